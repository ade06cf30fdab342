/**
 * The exact scorer on its own thread (server/retrieval/exact.ts, exact-worker.ts): a scorer
 * opened from an item table (a fine-tuning round's refresh, sent in slices) answers what the
 * bundle's model.onnx does; a model that cannot open, or a thread that dies, fails with a clear
 * error and never hangs (a served version answers from its item table meanwhile and opens a new
 * scorer); an idle scorer never keeps a finished process alive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExactScorer } from '../server/retrieval/exact.js';
import { buildScoringModel } from '../repository/onnx-scoring-graph.js';
import { Rng } from '../core/rng.js';
import { repoWith, testServer } from '../test-support/serving.js';

const here = dirname(fileURLToPath(import.meta.url));

function table(n: number, d: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * d }, () => r.next() * 2 - 1);
}

function brute(user: Float32Array, items: Float32Array, n: number, d: number, k: number): number[] {
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) s[i] += user[j] * items[i * d + j];
  return Array.from({ length: n }, (_, i) => i).sort((a, b) => s[b] - s[a] || a - b).slice(0, k);
}

test('a scorer built from an item table in several slices answers like the bundle model and a brute force', async () => {
  // 20,000 × 64 floats: more than one 4 MiB slice of the refresh
  const n = 20_000;
  const d = 64;
  const items = table(n, d, 7);
  const batches: number[] = [];
  const fromTable = await ExactScorer.fromTable(items, n, d, ['cpu'], undefined, (b) => batches.push(b), 1);
  const fromModel = await ExactScorer.open(buildScoringModel(items, n, d), d, n, ['cpu'], undefined, undefined, 1);
  try {
    assert.equal(fromTable.provider, 'cpu');
    const users = Array.from({ length: 12 }, (_, u) => table(1, d, 100 + u));
    // concurrent queries with different k go out in micro-batches
    const [a, b] = await Promise.all([Promise.all(users.map((u, i) => fromTable.topK(u, 5 + i))), Promise.all(users.map((u, i) => fromModel.topK(u, 5 + i)))]);
    users.forEach((u, i) => {
      assert.deepEqual(Array.from(a[i].rows), brute(u, items, n, d, 5 + i), `user ${i}`);
      assert.deepEqual(Array.from(a[i].rows), Array.from(b[i].rows));
      assert.deepEqual(Array.from(a[i].scores), Array.from(b[i].scores));
      for (let j = 1; j < a[i].scores.length; j++) assert.ok(a[i].scores[j - 1] >= a[i].scores[j]);
    });
    assert.equal(batches.reduce((x, y) => x + y, 0), users.length);
    // k past the catalog is capped
    const small = await ExactScorer.fromTable(items.subarray(0, 3 * d), 3, d, ['cpu']);
    assert.deepEqual(Array.from((await small.topK(users[0], 10)).rows), brute(users[0], items, 3, d, 3));
    await small.close();
  } finally {
    await Promise.all([fromTable.close(), fromModel.close()]);
  }
  await assert.rejects(fromTable.topK(table(1, d, 1), 3), /closed/);
});

test('a model that cannot open is a clear error; a table of the wrong size too', async () => {
  await assert.rejects(ExactScorer.open(new Uint8Array([1, 2, 3, 4]), 4, 2, ['cpu']), /no ONNX Runtime execution provider could open model\.onnx \(cpu: /);
  await assert.rejects(ExactScorer.fromTable(new Float32Array(10), 3, 4, ['cpu']), /item table has 10 values, expected 3×4/);
});

test('a scorer whose thread dies fails its runs with the reason instead of hanging', async () => {
  const d = 8;
  const s = await ExactScorer.fromTable(table(50, d, 3), 50, d, ['cpu']);
  assert.equal((await s.topK(table(1, d, 4), 3)).rows.length, 3);
  await (s as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  await assert.rejects(s.topK(table(1, d, 4), 3), /exact scorer thread exited/);
  await s.close(); // (closing a dead scorer returns)
});

test('an open scorer that is not closed does not keep a finished process alive', () => {
  const script = `
    import { ExactScorer } from ${JSON.stringify(join(here, '..', 'server', 'retrieval', 'exact.js'))};
    const s = await ExactScorer.fromTable(new Float32Array(40).fill(1), 10, 4, ['cpu']);
    const r = await s.topK(new Float32Array(4).fill(1), 2);
    console.log('rows', r.rows.length);`;
  const file = join(mkdtempSync(join(tmpdir(), 'promptmm-exact-')), 'idle.mjs');
  writeFileSync(file, script);
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, `the process was still running after 30 s: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /rows 2/);
});

test('a served version whose exact thread dies keeps answering exactly (scored on the event loop) and opens a new scorer', async () => {
  const { repo } = repoWith('dies');
  const s = await testServer(repo, 'dies', { online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const m = s.holder.model!;
    const [user, row] = [...m.userIndex.entries()][3];
    const want = async () => (await s.app.inject({ url: `/recommend?user=${user}&k=10&retrieval=exact` })).json().items.map((x: { item: string }) => x.item);
    const before = await want();
    const brute = Array.from({ length: m.nItems }, (_, i) => i)
      .filter((i) => !m.isSeen(row, i))
      .sort((a, b) => m.score(m.userVector(row), b) - m.score(m.userVector(row), a) || a - b)
      .slice(0, 10)
      .map((i) => m.itemIds[i]);
    assert.deepEqual(before, brute);
    const dead = m.exact;
    await (dead as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    assert.equal(dead.failed, true);
    m.cache.clear();
    const r = await s.app.inject({ url: `/recommend?user=${user}&k=10&retrieval=exact` });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().items.map((x: { item: string }) => x.item), brute);
    // the renewal it started serves soon after
    for (let i = 0; i < 200 && m.exact === dead; i++) await new Promise((res) => setTimeout(res, 25));
    assert.notEqual(m.exact, dead, 'a new scorer replaced the dead one');
    assert.equal(m.exact.failed, false);
    m.cache.clear();
    assert.deepEqual(await want(), brute);
  } finally {
    await s.close();
  }
});

test('closing a scorer twice: both calls settle', async () => {
  const s = await ExactScorer.fromTable(table(20, 4, 9), 20, 4, ['cpu']);
  await Promise.all([s.close(), s.close()]);
  await s.close();
});
