/** Serving a sequential bundle: answers from the encoder on each user's live sequence, the next answer after an interaction, replay after a restart, POST /recommend/session. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { exportBundle } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { SasrecForward } from '../repository/sasrec-forward.js';
import { randomSasrecArrays, sasrecRepo } from '../test-support/sasrec-checkpoint.js';
import { HNSW, repoWith, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
const { repo, data, shape } = sasrecRepo('sq');
const ref = new SasrecForward(randomSasrecArrays(shape, 1), shape);
let s = await testServer(repo, 'sq', { online: { roundEvery: 1, roundSeconds: 0 } });
after(() => s.close());

type Answer = { cold_start: boolean; retrieval: string; items: { item: string; score: number }[] };
async function rec(user: string, k = 10, retrieval = 'exact'): Promise<Answer> {
  const r = await s.app.inject({ method: 'GET', url: `/recommend?user=${user}&k=${k}&retrieval=${retrieval}` });
  assert.equal(r.statusCode, 200, r.body);
  return r.json();
}
const session = (payload: object) => s.app.inject({ method: 'POST', url: '/recommend/session', payload });
const post = (interactions: object[]) => s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions } });

/** The reference top-k of a sequence: scores against every item, `skip` left out, ties by lower row. */
function referenceTop(seq: number[], k: number, skip: Set<number>): number[] {
  const v = ref.encodeSequence(seq)!;
  const items = randomSasrecArrays(shape, 1)[0].data;
  const scored = [];
  for (let r = 0; r < data.nItems; r++) {
    if (skip.has(r)) continue;
    let dot = 0;
    for (let c = 0; c < shape.dim; c++) dot += v[c] * items[r * shape.dim + c];
    scored.push({ r, dot });
  }
  return scored.sort((a, b) => b.dot - a.dot || a.r - b.r).slice(0, k).map((x) => x.r);
}

const seqOf = (u: number) => s.holder.model!.sequences!.of(u);
const seenOf = (u: number) => new Set([...data.trainByUser.indices.subarray(data.trainByUser.indptr[u], data.trainByUser.indptr[u + 1]), ...data.valByUser.indices.subarray(data.valByUser.indptr[u], data.valByUser.indptr[u + 1])]);

test('GET /recommend answers from the encoder on the user\'s sequence, train + validation items filtered, on both paths', async () => {
  for (const u of [2, 11]) {
    const want = referenceTop(Array.from(seqOf(u)), 5, seenOf(u)).map(String);
    for (const path of ['exact', 'ann']) {
      const a = await rec(String(u), 5, path);
      assert.equal(a.cold_start, false);
      assert.deepEqual(a.items.map((x) => x.item), want, `user ${u} ${path}`);
    }
  }
  const unknown = await rec('nobody', 3);
  assert.equal(unknown.cold_start, true);
});

test('an interaction changes that user\'s very next answer (the cache is dropped, the sequence grows, no round runs)', async () => {
  const u = '5';
  const before = await rec(u);
  assert.deepEqual(await rec(u), before, 'a repeated request is answered the same (cached)');
  const item = before.items[0].item;
  const r = await post([{ user: u, item }]);
  assert.equal(r.statusCode, 200, r.body);
  const seq = Array.from(seqOf(5));
  assert.equal(seq.at(-1), Number(item));
  assert.ok(seq.length <= shape.maxLen);
  const next = await rec(u);
  assert.notDeepEqual(next.items, before.items);
  assert.ok(!next.items.some((x) => x.item === item), 'the new item is seen');
  assert.deepEqual(next.items.map((x) => x.item), referenceTop(seq, 10, new Set([...seenOf(5), Number(item)])).map(String));
  // roundEvery 1 would run a fine-tuning round on a user-table bundle: here the item table stays the bundle's.
  const m = s.holder.model!;
  assert.deepEqual(Array.from(m.itemVectors.subarray(0, shape.dim)), Array.from(randomSasrecArrays(shape, 1)[0].data.subarray(0, shape.dim)));
});

test('a user first seen online gets a sequence: popularity before, the encoder after its first interaction', async () => {
  assert.equal((await rec('newcomer')).cold_start, true);
  await post([{ user: 'newcomer', item: '3' }, { user: 'newcomer', item: '8' }]);
  const a = await rec('newcomer', 4);
  assert.equal(a.cold_start, false);
  assert.deepEqual(a.items.map((x) => x.item), referenceTop([3, 8], 4, new Set([3, 8])).map(String));
});

test('after a restart the sequences are replayed from the durable log', async () => {
  const before = await rec('newcomer', 4);
  const seq5 = Array.from(seqOf(5));
  await s.close();
  s = await testServer(repo, 'sq', { online: { roundEvery: 0, roundSeconds: 0 } });
  assert.deepEqual(Array.from(seqOf(5)), seq5);
  assert.deepEqual(await rec('newcomer', 4), before);
});

test('a new version swapped in while serving gets the sequences from the log (its replay), not only the bundle\'s', async () => {
  const seq5 = Array.from(seqOf(5));
  exportBundle(bundleFromCheckpoint(repo, 'sq'), { repo, hnsw: HNSW });
  const r = await s.app.inject({ method: 'POST', url: '/admin/reload', headers: auth });
  assert.equal(r.json().version, 2, r.body);
  assert.equal(s.holder.model!.version, 2);
  assert.deepEqual(Array.from(seqOf(5)), seq5);
});

test('concurrent answers are micro-batched (a run per width class) and each equals its sequence alone', async () => {
  const m = s.holder.model!;
  const users = Array.from({ length: 40 }, (_, u) => u);
  const got = await Promise.all(users.map((u) => m.vectors.vectorOf(u)));
  assert.ok(new Set(users.map((u) => seqOf(u).length)).size > 1, 'sequences of several lengths in one batch');
  let worst = 0;
  users.forEach((u, i) => {
    const want = ref.encodeSequence(seqOf(u))!;
    for (let c = 0; c < shape.dim; c++) worst = Math.max(worst, Math.abs(got[i]![c] - want[c]));
  });
  assert.ok(worst <= 1e-4, `max abs difference ${worst}`);
});

test('POST /recommend/session: the encoder on an anonymous sequence, its items left out; longer than maxLen keeps the most recent', async () => {
  const items = ['1', '4', '9'];
  const r = await session({ items, k: 5, retrieval: 'exact' });
  assert.equal(r.statusCode, 200, r.body);
  const b = r.json();
  assert.equal(b.cold_start, false);
  assert.deepEqual(b.items.map((x: { item: string }) => x.item), referenceTop([1, 4, 9], 5, new Set([1, 4, 9])).map(String));
  const long = Array.from({ length: 20 }, (_, i) => String(i % data.nItems));
  const l = (await session({ items: long, k: 3, exclude_seen: false })).json();
  assert.deepEqual(l.items.map((x: { item: string }) => x.item), referenceTop(long.slice(-shape.maxLen).map(Number), 3, new Set()).map(String));
  const empty = (await session({ items: [], k: 2 })).json();
  assert.equal(empty.cold_start, true);
  assert.equal(empty.items.length, 2);
});

test('POST /recommend/session bad input: unknown items and 10,000 items are 400s naming the field; a user-table bundle says it is not sequential', async () => {
  const unknown = await session({ items: ['1', 'nope', 'x'], k: 3 });
  assert.equal(unknown.statusCode, 400);
  assert.deepEqual(unknown.json(), { error: 'Bad Request', message: 'body.items.1: unknown item "nope" (not in the served catalog; 2 of the 3 items are unknown)', field: 'items.1' });
  const huge = await session({ items: Array.from({ length: 10_000 }, (_, i) => String(i % 40)), k: 3 });
  assert.equal(huge.statusCode, 400);
  assert.equal(huge.json().field, 'items');
  assert.match(huge.json().message, /body\.items: must NOT have more than 1000 items/);
  assert.equal((await session({ items: ['1'], k: 0 })).json().field, 'k');
  assert.equal((await session({ items: ['1'], k: 3, user: 'u' })).statusCode, 400);
  const plain = repoWith('p');
  const p = await testServer(plain.repo, 'p');
  try {
    const r = await p.app.inject({ method: 'POST', url: '/recommend/session', payload: { items: ['i1'], k: 3 } });
    assert.equal(r.statusCode, 400);
    assert.match(r.json().message, /not sequential \(no sequence\.onnx\)/);
  } finally {
    await p.close();
  }
});
