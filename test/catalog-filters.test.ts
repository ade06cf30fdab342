/**
 * Issue 18, request filters and dislikes: exclude / labels / exclude_labels on GET and POST
 * /recommend (labels from the bundle's item_labels.json), still k items when the catalog allows,
 * ann and exact agree with brute force, answers with filters not cached; a dislike never comes
 * back to that user, moves the user's vector away, and survives a restart (log + snapshot).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { HNSW, smallBundle, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
const input = { ...smallBundle('cat'), itemLabels: new Map(Array.from({ length: 300 }, (_, r) => [r, r % 2 === 0 ? [`c${r % 3}`, 'even'] : [`c${r % 3}`]] as [number, string[]])) };
const repo = mkdtempSync(join(tmpdir(), 'promptmm-catalog-'));
exportBundle(input, { repo, hnsw: HNSW });
const d = input.dim;
const row = (item: string) => Number(item.slice(1));
const seenOf = (u: number) => new Set(Array.from(input.seen.indices.subarray(input.seen.indptr[u], input.seen.indptr[u + 1])));
const dot = (uv: Float32Array, i: number) => {
  let s = 0;
  for (let c = 0; c < d; c++) s += uv[c] * input.itemEmbeddings[i * d + c];
  return s;
};
function bruteForce(uv: Float32Array, k: number, keep: (i: number) => boolean): string[] {
  const rows = Array.from({ length: 300 }, (_, i) => i).filter(keep);
  return rows.map((i) => ({ i, s: dot(uv, i) })).sort((a, b) => b.s - a.s || a.i - b.i).slice(0, k).map((x) => `i${x.i}`);
}

test('exclude, labels and exclude_labels: k items when the catalog allows, by the student score, on both paths; not cached', async () => {
  const s = await testServer(repo, 'cat', { online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const { app } = s;
    const get = async (url: string) => {
      const r = await app.inject({ method: 'GET', url });
      return { status: r.statusCode, body: r.json() };
    };
    const u = 3;
    const uv = s.holder.model!.userVector(s.holder.model!.userIndex.get(`u${u}`)!).slice();
    const seen = seenOf(u);
    const plain = (await get(`/recommend?user=u${u}&k=10`)).body.items.map((x: { item: string }) => x.item);
    for (const retrieval of ['ann', 'exact']) {
      const top = plain.slice(0, 3);
      let r = await get(`/recommend?user=u${u}&k=10&retrieval=${retrieval}&exclude=${top.join(',')}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.items.map((x: { item: string }) => x.item), bruteForce(uv, 10, (i) => !seen.has(i) && !top.includes(`i${i}`)));
      r = await get(`/recommend?user=u${u}&k=10&retrieval=${retrieval}&labels=c0`);
      assert.deepEqual(r.body.items.map((x: { item: string }) => x.item), bruteForce(uv, 10, (i) => !seen.has(i) && i % 3 === 0));
      r = await get(`/recommend?user=u${u}&k=10&retrieval=${retrieval}&labels=c1,c2&exclude_labels=even`);
      assert.deepEqual(r.body.items.map((x: { item: string }) => x.item), bruteForce(uv, 10, (i) => !seen.has(i) && i % 3 !== 0 && i % 2 === 1));
      // a narrow filter and a large k: every allowed item, none other (exact fill behind the ANN search)
      const allowed = Array.from({ length: 300 }, (_, i) => i).filter((i) => !seen.has(i) && i % 3 === 0 && i % 2 === 1 && i !== 3);
      r = await get(`/recommend?user=u${u}&k=300&retrieval=${retrieval}&labels=c0&exclude_labels=even&exclude=i3`);
      assert.deepEqual(new Set(r.body.items.map((x: { item: string }) => row(x.item))), new Set(allowed));
      assert.equal(r.body.items.length, allowed.length);
    }
    // the filtered answers were not cached as the user's answer
    assert.deepEqual((await get(`/recommend?user=u${u}&k=10`)).body.items.map((x: { item: string }) => x.item), plain);
    // POST takes arrays; cold-start users are filtered too
    const p = await app.inject({ method: 'POST', url: '/recommend', payload: { users: [`u${u}`, 'nobody'], k: 5, labels: ['c2'], exclude: [plain[0]] } });
    assert.equal(p.statusCode, 200, p.body);
    for (const res of p.json().results) {
      assert.equal(res.items.length, 5);
      for (const it of res.items) assert.ok(row(it.item) % 3 === 2 && it.item !== plain[0]);
    }
  } finally {
    await s.close();
  }
});

test('filters: bad input is a 400 naming the field', async () => {
  const s = await testServer(repo, 'cat', { online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const { app } = s;
    const cases: [object, string][] = [
      [{ method: 'GET', url: `/recommend?user=u3&exclude=${Array.from({ length: 1001 }, (_, i) => `i${i}`).join(',')}` }, 'exclude'],
      [{ method: 'GET', url: '/recommend?user=u3&exclude=i1,,i2' }, 'exclude'],
      [{ method: 'GET', url: `/recommend?user=u3&labels=${'x'.repeat(65)}` }, 'labels'],
      [{ method: 'GET', url: '/recommend?user=u3&exclude_labels=a%01b' }, 'exclude_labels'],
      [{ method: 'POST', url: '/recommend', payload: { users: ['u3'], exclude: Array.from({ length: 1001 }, (_, i) => `i${i}`) } }, 'exclude'],
      [{ method: 'POST', url: '/recommend', payload: { users: ['u3'], labels: ['a,b'] } }, 'labels'],
      [{ method: 'POST', url: '/recommend', payload: { users: ['u3'], labels: Array.from({ length: 10000 }, (_, i) => `l${i}`) } }, 'labels'],
      [{ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u3', item: 'i1', type: 'hate' }] } }, 'type'],
    ];
    for (const [req, field] of cases) {
      const r = await app.inject(req as never);
      assert.equal(r.statusCode, 400, `${JSON.stringify(req).slice(0, 120)}: ${r.body}`);
      assert.match(r.json().message, new RegExp(field), r.body);
    }
  } finally {
    await s.close();
  }
});

test('a dislike never comes back to that user, moves its vector away, and survives a restart', async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'promptmm-dislike-log-'));
  let s = await testServer(repo, 'cat', { logDir, online: { roundEvery: 0, roundSeconds: 0 } });
  const u = 17;
  let top: string;
  try {
    const { app } = s;
    const before = (await app.inject({ method: 'GET', url: `/recommend?user=u${u}&k=10` })).json().items;
    top = before[0].item;
    const r = await app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: `u${u}`, item: top, type: 'dislike' }, { user: 'fresh', item: 'i7', type: 'dislike' }] } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().accepted, 2);
    for (const retrieval of ['ann', 'exact']) {
      const after = (await app.inject({ method: 'GET', url: `/recommend?user=u${u}&k=300&retrieval=${retrieval}` })).json().items;
      assert.ok(!after.some((x: { item: string }) => x.item === top), `${retrieval}: the disliked item came back`);
    }
    const m = s.holder.model!;
    const score = dot(m.userVector(m.userIndex.get(`u${u}`)!), row(top));
    assert.ok(score < before[0].score, `the user's score of the disliked item fell (${before[0].score} → ${score})`);
    assert.ok(!m.isSeen(m.userIndex.get(`u${u}`)!, row(top)), 'a dislike is not a seen item');
    const cold = (await app.inject({ method: 'GET', url: '/recommend?user=fresh&k=300' })).json();
    assert.equal(cold.cold_start, true);
    assert.ok(!cold.items.some((x: { item: string }) => x.item === 'i7'));
  } finally {
    await s.close();
  }
  // restart: the snapshot holds the vectors, the log the dislike
  s = await testServer(repo, 'cat', { logDir, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const after = (await s.app.inject({ method: 'GET', url: `/recommend?user=u${u}&k=300` })).json().items;
    assert.ok(after.length > 0);
    assert.ok(!after.some((x: { item: string }) => x.item === top!), 'the dislike survived the restart');
    assert.ok(!(await s.app.inject({ method: 'GET', url: '/recommend?user=fresh&k=300' })).json().items.some((x: { item: string }) => x.item === 'i7'));
  } finally {
    await s.close();
  }
});

test('GET /items/{id}/neighbors: by the student item vectors, itself and filtered items out, both paths agree; GET /items/{id}', async () => {
  const s = await testServer(repo, 'cat', { online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const { app } = s;
    const iv = input.itemEmbeddings.slice(5 * d, 6 * d);
    for (const retrieval of ['ann', 'exact']) {
      let r = await app.inject({ method: 'GET', url: `/items/i5/neighbors?k=10&retrieval=${retrieval}` });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json().items.map((x: { item: string }) => x.item), bruteForce(iv, 10, (i) => i !== 5));
      r = await app.inject({ method: 'GET', url: `/items/i5/neighbors?k=10&retrieval=${retrieval}&exclude_labels=even&exclude=i7` });
      assert.deepEqual(r.json().items.map((x: { item: string }) => x.item), bruteForce(iv, 10, (i) => i !== 5 && i % 2 === 1 && i !== 7));
      r = await app.inject({ method: 'GET', url: `/items/i5/neighbors?k=10&retrieval=${retrieval}&labels=c2` });
      assert.deepEqual(r.json().items.map((x: { item: string }) => x.item), bruteForce(iv, 10, (i) => i !== 5 && i % 3 === 2), 'its own label: itself still left out');
    }
    assert.equal((await app.inject({ method: 'GET', url: '/items/nope/neighbors' })).statusCode, 404);
    const long = await app.inject({ method: 'GET', url: `/items/${'x'.repeat(10 * 1024)}/neighbors` });
    assert.equal(long.statusCode, 400, long.body);
    assert.equal(long.json().field, 'id');
    const info = await app.inject({ method: 'GET', url: '/items/i4', headers: auth });
    assert.equal(info.statusCode, 200, info.body);
    assert.deepEqual({ ...(info.json() as object), popularity: 0 }, { item: 'i4', model_version: 1, row: 4, in_bundle: true, hidden: false, deleted: false, labels: ['c1', 'even'], popularity: 0 });
    assert.equal((await app.inject({ method: 'GET', url: '/items/i4' })).statusCode, 401, 'token-protected');
    assert.equal((await app.inject({ method: 'GET', url: '/items/nope', headers: auth })).statusCode, 404);
  } finally {
    await s.close();
  }
});

test('DELETE /items/{id}: hidden from every answer at once (both paths, cold starts, neighbors), durable across a restart', async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'promptmm-delete-log-'));
  let s = await testServer(repo, 'cat', { logDir, online: { roundEvery: 0, roundSeconds: 0 } });
  let top: string;
  let popular: string;
  try {
    const { app } = s;
    top = (await app.inject({ method: 'GET', url: '/recommend?user=u3&k=10' })).json().items[0].item; // now cached
    popular = (await app.inject({ method: 'GET', url: '/recommend?user=nobody&k=1' })).json().items[0].item;
    for (const id of new Set([top, popular])) {
      const r = await app.inject({ method: 'DELETE', url: `/items/${id}`, headers: auth });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().hidden, true);
    }
    assert.equal((await app.inject({ method: 'DELETE', url: `/items/${top}`, headers: auth })).json().already_hidden, true);
    assert.equal((await app.inject({ method: 'DELETE', url: '/items/nope', headers: auth })).statusCode, 404);
    const m = s.holder.model!;
    const searched = m.ann.searchKnn(Array.from(m.userVector(m.userIndex.get('u3')!)), 250).neighbors;
    assert.ok(!searched.includes(m.itemIndex.get(top)!) && !searched.includes(m.itemIndex.get(popular)!), 'markDelete: the index search itself skips deleted items');
    assert.equal((await app.inject({ method: 'DELETE', url: `/items/${top}` })).statusCode, 401);
    for (const retrieval of ['ann', 'exact']) {
      const items = (await app.inject({ method: 'GET', url: `/recommend?user=u3&k=300&retrieval=${retrieval}` })).json().items.map((x: { item: string }) => x.item);
      assert.ok(!items.includes(top) && !items.includes(popular), `${retrieval}: a deleted item was recommended`);
      const nb = (await app.inject({ method: 'GET', url: `/items/i9/neighbors?k=299&retrieval=${retrieval}` })).json().items.map((x: { item: string }) => x.item);
      assert.ok(!nb.includes(top) && !nb.includes(popular));
      assert.equal(nb.length, 300 - 1 - new Set([top, popular, 'i9']).size + 1);
    }
    assert.ok(!(await app.inject({ method: 'GET', url: '/recommend?user=nobody&k=5' })).json().items.some((x: { item: string }) => x.item === popular));
    assert.equal((await app.inject({ method: 'GET', url: `/items/${top}`, headers: auth })).json().hidden, true);
    assert.equal((await app.inject({ method: 'GET', url: `/items/${top}/neighbors` })).statusCode, 404);
  } finally {
    await s.close();
  }
  s = await testServer(repo, 'cat', { logDir, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const items = (await s.app.inject({ method: 'GET', url: '/recommend?user=u3&k=300' })).json().items.map((x: { item: string }) => x.item);
    assert.ok(items.length > 0 && !items.includes(top!) && !items.includes(popular!), 'the deletion survived the restart');
  } finally {
    await s.close();
  }
});
