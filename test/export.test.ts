import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { BUNDLE_FILES } from '../repository/bundle-format.js';
import { exportBundle, ExportError, type BundleInput } from '../export/exporter.js';
import { loadHnswIndex, rowArray } from '../repository/hnsw-index.js';
import { buildScoringModel } from '../repository/onnx-scoring-graph.js';
import { listVersions, readManifest, verifyBundle, versionDir } from '../repository/versions.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { parseNpyInt32, readNpy } from '../core/npy.js';

const here = dirname(fileURLToPath(import.meta.url));
const HNSW = { space: 'ip' as const, m: 8, efConstruction: 100, efSearch: 100, seed: 1 };
const tmpRepo = () => mkdtempSync(join(tmpdir(), 'promptmm-export-'));

/** Reference top-k: score descending, ties by lower row (the ONNX TopK rule). */
function bruteTopK(user: Float32Array, items: Float32Array, n: number, d: number, k: number) {
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = 0; j < d; j++) acc += user[j] * items[i * d + j];
    s[i] = acc;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
  return { rows: order.slice(0, k), scores: order.slice(0, k).map((i) => s[i]) };
}

async function runOnnx(bytes: Uint8Array, users: Float32Array, b: number, d: number, k: number) {
  const sess = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  const out = await sess.run({ users: new ort.Tensor('float32', users, [b, d]), k: new ort.Tensor('int64', BigInt64Array.from([BigInt(k)]), [1]) });
  return { scores: out.scores.data as Float32Array, rows: Array.from(out.items.data as BigInt64Array, Number) };
}

test('model.onnx top-k equals a brute-force top-k from the .npy files, k up to the catalog size', async () => {
  const repo = tmpRepo();
  const input = syntheticBundle({ name: 'onnx', users: 40, items: 300, dim: 16, seed: 3 });
  const r = exportBundle(input, { repo, hnsw: HNSW });
  const items = readNpy(join(r.dir, BUNDLE_FILES.itemEmbeddings));
  const users = readNpy(join(r.dir, BUNDLE_FILES.userEmbeddings));
  assert.deepEqual(items.shape, [300, 16]);
  const bytes = readFileSync(join(r.dir, BUNDLE_FILES.onnx));
  const B = 8;
  const batch = users.data.slice(0, B * 16);
  for (const k of [1, 20, 300]) {
    const got = await runOnnx(bytes, batch, B, 16, k);
    assert.equal(got.rows.length, B * k);
    for (let b = 0; b < B; b++) {
      const want = bruteTopK(batch.subarray(b * 16, (b + 1) * 16), items.data, 300, 16, k);
      for (let j = 0; j < k; j++) {
        assert.ok(Math.abs(got.scores[b * k + j] - want.scores[j]) < 1e-4, `user ${b} rank ${j}: score ${got.scores[b * k + j]} vs ${want.scores[j]}`);
        // Rows may differ only where scores tie within float error.
        if (got.rows[b * k + j] !== want.rows[j]) assert.ok(Math.abs(want.scores[j] - (want.scores[j + 1] ?? want.scores[j - 1])) < 1e-4);
      }
      if (k === 300) assert.deepEqual([...got.rows.slice(b * k, (b + 1) * k)].sort((x, y) => x - y), Array.from({ length: 300 }, (_, i) => i));
    }
  }
});

test('model.onnx breaks exact ties by the lower item row, like the reference', async () => {
  // Integer-valued vectors: every score is exact in float32, and items repeat so scores tie.
  const n = 60;
  const d = 4;
  const items = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) items[i * d + j] = ((i % 6) * (j + 1)) % 5;
  const users = Float32Array.from([1, 0, 2, 1, 0, 0, 0, 0, 3, 1, 1, 1]);
  const bytes = buildScoringModel(items, n, d);
  for (const k of [7, n]) {
    const got = await runOnnx(bytes, users, 3, d, k);
    for (let b = 0; b < 3; b++) {
      const want = bruteTopK(users.subarray(b * d, (b + 1) * d), items, n, d, k);
      assert.deepEqual(got.rows.slice(b * k, (b + 1) * k), want.rows, `user ${b}, k ${k}`);
    }
  }
});

test('bundle holds ids, seen items, popularity and an HNSW index that finds the exact top items', async () => {
  const repo = tmpRepo();
  const input = syntheticBundle({ name: 'files', users: 50, items: 400, dim: 16, seed: 5 });
  const r = exportBundle(input, { repo, hnsw: HNSW });
  const dir = r.dir;
  const ids = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.ids), 'utf8'));
  assert.equal(ids.users[7], 'u7');
  assert.equal(ids.items[399], 'i399');
  const off = parseNpyInt32(readFileSync(join(dir, BUNDLE_FILES.seenOffsets)), 'seen_offsets.npy');
  const seen = parseNpyInt32(readFileSync(join(dir, BUNDLE_FILES.seenItems)), 'seen_items.npy');
  const pop = parseNpyInt32(readFileSync(join(dir, BUNDLE_FILES.popularity)), 'item_popularity.npy');
  assert.deepEqual(off.data, input.seen.indptr);
  assert.deepEqual(seen.data, input.seen.indices);
  assert.deepEqual(pop.data, input.popularity);
  const m = readManifest(dir);
  assert.equal(m.version, 1);
  assert.equal(m.counts.items, 400);
  assert.deepEqual(m.hnsw, HNSW);
  assert.equal(m.dataset.hash, input.dataset.hash);
  assert.ok((await verifyBundle(dir)).ok);

  const index = await loadHnswIndex(join(dir, BUNDLE_FILES.hnsw), 16, 200);
  let hits = 0;
  for (let u = 0; u < 20; u++) {
    const q = input.userEmbeddings.subarray(u * 16, (u + 1) * 16);
    const exact = new Set(bruteTopK(q, input.itemEmbeddings, 400, 16, 10).rows);
    for (const row of index.searchKnn(rowArray(input.userEmbeddings, u, 16), 10).neighbors) if (exact.has(row)) hits++;
  }
  assert.ok(hits / 200 >= 0.95, `HNSW recall@10 ${hits / 200} on 400 items`);
});

test('versions increase, verify catches a changed byte and names the file', async () => {
  const repo = tmpRepo();
  const input = syntheticBundle({ name: 'v', users: 20, items: 50, dim: 8 });
  assert.equal(exportBundle(input, { repo, hnsw: HNSW }).version, 1);
  const r2 = exportBundle(input, { repo, hnsw: HNSW });
  assert.equal(r2.version, 2);
  assert.deepEqual(listVersions(repo, 'v'), [1, 2]);
  const f = join(r2.dir, BUNDLE_FILES.itemEmbeddings);
  const b = readFileSync(f);
  b[b.length - 1] ^= 0xff;
  writeFileSync(f, b);
  const v = await verifyBundle(versionDir(repo, 'v', 2));
  assert.equal(v.ok, false);
  assert.match(v.problems.join('\n'), /item_embeddings\.npy: sha256/);
  assert.ok((await verifyBundle(versionDir(repo, 'v', 1))).ok);
});

test('bad input: dimension mismatch, non-finite values, repository path that is a file', () => {
  const repo = tmpRepo();
  const good = syntheticBundle({ name: 'bad', users: 10, items: 20, dim: 8 });
  const broken: BundleInput = { ...good, itemEmbeddings: good.itemEmbeddings.slice(0, 19 * 8) };
  assert.throws(() => exportBundle(broken, { repo, hnsw: HNSW }), (e: Error) => e instanceof ExportError && /item embeddings: 152 values, expected 20 items × dim 8/.test(e.message));
  const nan = good.userEmbeddings.slice();
  nan[3 * 8 + 2] = NaN;
  assert.throws(() => exportBundle({ ...good, userEmbeddings: nan }, { repo, hnsw: HNSW }), /user embeddings: non-finite value at row 3/);
  const file = join(repo, 'not-a-folder');
  writeFileSync(file, 'x');
  assert.throws(() => exportBundle(good, { repo: file, hnsw: HNSW }), /is a file, not a folder/);
  assert.deepEqual(listVersions(repo, 'bad'), []);
});

test('a full disk mid-export leaves nothing in the repository', () => {
  const repo = tmpRepo();
  const child = join(here, '..', 'test-support', 'export-child.js');
  const r = spawnSync(process.execPath, [child, repo], { env: { ...process.env, PROMPTMM_EXPORT_FAULT: 'enospc:model.onnx' }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /failed while writing model\.onnx: no space left on device; nothing was added/);
  assert.deepEqual(readdirSync(join(repo, 'crash')), []);
});

test('killing the exporter at any point leaves no version or a complete one', async () => {
  const repo = tmpRepo();
  const child = join(here, '..', 'test-support', 'export-child.js');
  const points = [BUNDLE_FILES.userEmbeddings, BUNDLE_FILES.seenItems, BUNDLE_FILES.onnx, BUNDLE_FILES.hnsw, BUNDLE_FILES.manifest, '(commit)'];
  for (const at of points) {
    const r = spawnSync(process.execPath, [child, repo], { env: { ...process.env, PROMPTMM_EXPORT_FAULT: `kill:${at}` }, encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', `killed at ${at}`);
    assert.deepEqual(listVersions(repo, 'crash'), [], `no version after a kill at ${at}`);
    assert.ok(!existsSync(join(repo, 'crash', '1')));
  }
  // The next export cleans the stale temporaries up and commits version 1, complete.
  const ok = spawnSync(process.execPath, [child, repo], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), '1');
  assert.deepEqual(readdirSync(join(repo, 'crash')), ['1']);
  assert.ok((await verifyBundle(versionDir(repo, 'crash', 1))).ok);
});
