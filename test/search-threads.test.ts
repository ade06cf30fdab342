/**
 * Issue 23, search threads: the ANN candidate search runs on a worker thread holding its own
 * copy of the index; through every mutation the event loop's copy takes (new items, resizes,
 * deletes, re-linked vectors, ef) the thread answers exactly as the event loop's copy would; a
 * thread that dies leaves the searches to the event loop; a server with a search thread answers
 * as one without, through interactions, deletes and fine-tuning rounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Rng } from '../core/rng.js';
import { buildHnswIndex, rowArray } from '../repository/hnsw-index.js';
import { AnnIndex } from '../server/retrieval/ann-index.js';
import { SearchThreads } from '../server/retrieval/search-threads.js';
import { searchUnseen } from '../server/retrieval/unseen-search.js';
import { repoWith, testServer } from '../test-support/serving.js';

const D = 16;
const N = 300;

function indexFile(rng: Rng): string {
  const items = Float32Array.from({ length: N * D }, () => rng.normal());
  const file = join(mkdtempSync(join(tmpdir(), 'promptmm-st-')), 'items.hnsw');
  // A small M and ef: an approximate search, so that equal answers mean equal graphs.
  buildHnswIndex(items, N, D, { space: 'ip', m: 4, efConstruction: 20, efSearch: 20, seed: 3 }, file);
  return file;
}

/** Random queries and left-out sets: the thread's rows equal the event loop's search of its own copy. */
async function sameAnswers(a: AnnIndex, rng: Rng, what: string): Promise<void> {
  const n = a.getCurrentCount();
  for (let t = 0; t < 40; t++) {
    const v = Float32Array.from({ length: D }, () => rng.normal());
    const out = Int32Array.from({ length: rng.int(80) }, () => rng.int(n));
    const isOut = new Set(out);
    const c = Math.min(20, n);
    const first = Math.min(n, c + Math.min(out.length, c));
    const got = await a.searchUnseen(v, c, first, 10, () => out, (r) => isOut.has(r));
    const want = searchUnseen(a.local, rowArray(v, 0, v.length, []), c, first, 10, (r) => isOut.has(r));
    assert.deepEqual(Array.from(got), Array.from(want), `${what}: query ${t}`);
  }
}

test('a search thread answers as the event loop copy does, through additions, resizes, deletes, re-links and ef', async () => {
  const rng = new Rng(11);
  const threads = SearchThreads.start(1)!;
  try {
    const a = await AnnIndex.open(indexFile(rng), D, 20, threads);
    assert.ok(a.offThread);
    await sameAnswers(a, rng, 'as loaded');
    assert.ok(threads.answered >= 40, 'the thread answered');
    // new items past the capacity (grown), deletes, undeletes, moved vectors, another ef
    a.resizeIndex(N + 40);
    for (let r = N; r < N + 40; r++) a.addPoint(Array.from({ length: D }, () => 2 * rng.normal()), r);
    await sameAnswers(a, rng, 'after additions');
    for (let r = 0; r < 60; r += 3) a.markDelete(r);
    await sameAnswers(a, rng, 'after deletes');
    for (let r = 0; r < 30; r += 6) a.unmarkDelete(r);
    for (let r = 100; r < 140; r++) a.addPoint(Array.from({ length: D }, () => rng.normal()), r);
    a.setEf(12);
    await sameAnswers(a, rng, 'after re-links and ef');
    const answered = threads.answered;
    assert.ok(answered >= 160);
    // a second index (a rebuilt one) beside the first; the first freed afterwards
    const b = await AnnIndex.open(indexFile(rng), D, 20, threads);
    await sameAnswers(b, rng, 'a second index');
    a.dispose();
    await sameAnswers(b, rng, 'after the first was freed');
    // a freed index still answers (on the event loop) for a search that raced its replacement
    await sameAnswers(a, rng, 'freed');
    // a file that cannot be read: the open fails, and the threads serve the other index as before
    await assert.rejects(AnnIndex.open(join(tmpdir(), 'promptmm-no-such-index.hnsw'), D, 20, threads));
    await assert.rejects(threads.load(join(tmpdir(), 'promptmm-no-such-index.hnsw'), D, 20));
    assert.equal(threads.size, 1);
    const before = threads.answered;
    await sameAnswers(b, rng, 'after a failed load');
    assert.ok(threads.answered >= before + 40, 'still answered by the thread');
  } finally {
    await threads.close();
  }
});

test('a search thread that dies: its searches run on the event loop, with the same answers', async () => {
  const rng = new Rng(12);
  const threads = SearchThreads.start(1)!;
  try {
    const a = await AnnIndex.open(indexFile(rng), D, 20, threads);
    await sameAnswers(a, rng, 'before');
    const worker = (threads as unknown as { threads: { worker: Worker }[] }).threads[0].worker;
    const exited = once(worker, 'exit');
    await worker.terminate();
    await exited;
    assert.equal(threads.size, 0);
    assert.equal(a.offThread, false);
    const answered = threads.answered;
    a.addPoint(Array.from({ length: D }, () => rng.normal()), 5);
    await sameAnswers(a, rng, 'after the thread died');
    assert.equal(threads.answered, answered, 'nothing answered by a thread');
  } finally {
    await threads.close();
  }
});

test('a server with a search thread answers as one without, through interactions, deletes and rounds', async () => {
  const { repo: r1 } = repoWith('st');
  const { repo: r0 } = repoWith('st');
  const online = { roundEvery: 0, roundSeconds: 0, rebuildDuty: 1 }; // (rounds rebuild, as they did before the duty rule: the index swap on the threads is tested)
  const [s1, s0] = await Promise.all([testServer(r1, 'st', { searchThreads: 1, online }), testServer(r0, 'st', { searchThreads: 0, online })]);
  const auth = { authorization: 'Bearer secret' };
  const both = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    Promise.all([s1, s0].map((s) => s.app.inject({ method, url, payload, headers: method === 'GET' ? {} : auth })));
  const compare = async (what: string) => {
    for (let u = 0; u < 200; u += 3) {
      const [a, b] = await both('GET', `/recommend?user=u${u}&k=10`);
      assert.equal(a.statusCode, 200);
      assert.equal(a.body, b.body, `${what}: u${u}`);
    }
  };
  try {
    assert.ok(s1.holder.model!.ann.offThread, 'the first server searches on a thread');
    assert.equal(s0.holder.model!.ann.offThread, false);
    await compare('as loaded');
    const rng = new Rng(5);
    const interactions = Array.from({ length: 300 }, () => ({ user: `u${1 + rng.int(199)}`, item: `i${rng.int(300)}` }));
    for (const r of await both('POST', '/interactions', { interactions })) assert.equal(r.statusCode, 200);
    await compare('after interactions');
    for (const r of await both('DELETE', '/items/i7')) assert.equal(r.statusCode, 200);
    await compare('after a delete');
    // With a hidden item every request has a filter: one that keeps the seen items (exclude_seen=false)
    // must not share the candidates of one that drops them, even when both are in flight at once.
    for (let u = 1; u < 200; u += 20) {
      const [seenOut, seenIn, exact] = await Promise.all(
        [`/recommend?user=u${u}&k=10`, `/recommend?user=u${u}&k=10&exclude_seen=false`, `/recommend?user=u${u}&k=10&exclude_seen=false&retrieval=exact`].map((url) => s1.app.inject({ method: 'GET', url })),
      );
      assert.equal(seenOut.statusCode, 200);
      const ids = (r: typeof exact) => (r.json() as { items: { item: string }[] }).items.map((x) => x.item);
      assert.deepEqual(ids(seenIn), ids(exact), `u${u}: exclude_seen=false by ann = exact`);
    }
    for (const r of await both('POST', '/admin/finetune', {})) assert.equal(r.statusCode, 200);
    await compare('after a round');
  } finally {
    await Promise.all([s1.close(), s0.close()]);
  }
});
