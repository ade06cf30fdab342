import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Dataset, loadDataset } from '../data/dataset.js';
import { generateSynthetic } from '../data/synthetic.js';

const roots: string[] = [];
process.on('exit', () => roots.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'syn-'));
  roots.push(d);
  return d;
}

function files(dir: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]));
}

test('defaults: loads cleanly with the documented shape', () => {
  const dir = tmp();
  const out = generateSynthetic({ dir });
  assert.equal(out.interFile, join(dir, 'synthetic.inter'));
  assert.deepEqual(readdirSync(dir).sort(), ['audio_feat.npy', 'image_feat.npy', 'synthetic.inter']);
  const d = loadDataset(dir);
  assert.equal(d.name, 'synthetic');
  assert.equal(d.nUsers, 600);
  assert.equal(d.nItems, 400);
  assert.deepEqual(d.modalities.map((m) => [m.name, m.dim]), [['audio', 32], ['image', 64]]);
  const total = d.train.users.length + d.val.users.length + d.test.users.length;
  assert.equal(total, out.interactions);
  assert.ok(Math.abs(total / 600 - 20) < 3, `mean per user ${total / 600}`);
  const trainShare = d.train.users.length / total;
  assert.ok(trainShare > 0.75 && trainShare < 0.88, `train share ${trainShare}`);
  for (let u = 0; u < d.nUsers; u++) assert.ok(d.trainByUser.indptr[u + 1] > d.trainByUser.indptr[u], `user ${u} has no train item`);
  // Sampling is without replacement: no (user, item) pair repeats across splits.
  assert.equal(d.trainByUser.indices.length + d.valByUser.indices.length + d.testByUser.indices.length, total);
});

test('deterministic for a seed, different across seeds', () => {
  const [a, b, c] = [tmp(), tmp(), tmp()];
  generateSynthetic({ dir: a, seed: 7, users: 80, items: 60 });
  generateSynthetic({ dir: b, seed: 7, users: 80, items: 60 });
  generateSynthetic({ dir: c, seed: 8, users: 80, items: 60 });
  assert.deepEqual(files(a), files(b));
  assert.notDeepEqual(files(a)['synthetic.inter'], files(c)['synthetic.inter']);
});

test('float16/float64 features, CRLF and a rating column load and agree with float32', () => {
  const opts = { users: 50, items: 40, name: 'mini', modalities: [{ name: 'text', dim: 8, signal: 0.5 }] };
  const f32 = loadDataset(generateSynthetic({ dir: tmp(), ...opts }).dir);
  const f16dir = generateSynthetic({ dir: tmp(), ...opts, dtype: 'float16', crlf: true, extraColumns: true }).dir;
  const inter = readFileSync(join(f16dir, 'mini.inter'), 'utf8');
  assert.ok(inter.startsWith('userID\titemID\trating\tx_label\r\n'));
  const f16 = loadDataset(f16dir);
  const f64 = loadDataset(generateSynthetic({ dir: tmp(), ...opts, dtype: 'float64' }).dir);
  assert.deepEqual(f16.train, f32.train); // same interactions whatever the format
  assert.deepEqual(f64.modalities[0].data, f32.modalities[0].data);
  const a = f32.modalities[0].data;
  const h = f16.modalities[0].data;
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - h[i]) <= Math.abs(a[i]) * 2 ** -10 + 2 ** -24, `value ${i}`);
});

test('tiny configurations still have non-empty splits; stale files are refused', () => {
  const dir = tmp();
  generateSynthetic({ dir, users: 1, items: 3, interactionsPerUser: 1, modalities: [] });
  const d = loadDataset(dir);
  assert.deepEqual([d.train.users.length, d.val.users.length, d.test.users.length], [1, 1, 1]);
  writeFileSync(join(dir, 'old.inter'), 'x');
  assert.throws(() => generateSynthetic({ dir }), /already holds other dataset files/);
});

/** Recall@k on the test split for a scorer (train items excluded). */
function recall(d: Dataset, score: (u: number, out: Float64Array) => void, k = 20): number {
  const s = new Float64Array(d.nItems);
  let sum = 0;
  let n = 0;
  for (let u = 0; u < d.nUsers; u++) {
    const t0 = d.testByUser.indptr[u];
    const t1 = d.testByUser.indptr[u + 1];
    if (t1 === t0) continue;
    score(u, s);
    for (let p = d.trainByUser.indptr[u]; p < d.trainByUser.indptr[u + 1]; p++) s[d.trainByUser.indices[p]] = -Infinity;
    const top = Array.from(s.keys()).sort((a, b) => s[b] - s[a]).slice(0, k);
    const test = new Set(d.testByUser.indices.subarray(t0, t1));
    sum += top.filter((i) => test.has(i)).length / test.size;
    n++;
  }
  return sum / n;
}

test('learnable: item-based CF beats popularity', (t) => {
  const d = loadDataset(generateSynthetic({ dir: tmp() }).dir, { features: false });
  const pop = recall(d, (_u, s) => s.forEach((_, i) => (s[i] = d.itemPopularity[i])));
  // Cosine item-item co-occurrence on train.
  const n = d.nItems;
  const co = new Float64Array(n * n);
  const { indptr, indices } = d.trainByUser;
  for (let u = 0; u < d.nUsers; u++) {
    for (let a = indptr[u]; a < indptr[u + 1]; a++) for (let b = indptr[u]; b < indptr[u + 1]; b++) co[indices[a] * n + indices[b]]++;
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) co[i * n + j] /= Math.sqrt((d.itemPopularity[i] || 1) * (d.itemPopularity[j] || 1));
  const knn = recall(d, (u, s) => {
    s.fill(0);
    for (let p = indptr[u]; p < indptr[u + 1]; p++) for (let j = 0; j < n; j++) s[j] += co[indices[p] * n + j];
  });
  t.diagnostic(`itemKNN recall@20 ${knn.toFixed(3)}, popularity ${pop.toFixed(3)}`);
  assert.ok(knn > pop * 1.2, `itemKNN recall@20 ${knn.toFixed(3)} vs popularity ${pop.toFixed(3)}`);
});
