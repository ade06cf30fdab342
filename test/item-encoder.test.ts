/**
 * The item encoder (issue 18): the ONNX graph against its plain forward, the trainer's designs on
 * generated data, train → export → the server's runner, and the bundle check's refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { runCli } from '../test-support/cli.js';
import { Rng } from '../core/rng.js';
import { buildItemEncoderModel, encodeReference, ITEM_ENCODER_OUTPUT, type ItemEncoderWeights } from '../repository/onnx-item-encoder-graph.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { loadItemEncoder } from '../trainer/stages/item-encoder.js';
import { loadDataset } from '../data/dataset.js';
import { fitItemEncoder, OUTPUT_SCALES, rankNewItems, splitTrainingItems } from '../trainer/models/item-encoder.js';
import { initEngine } from '../trainer/engine/backend.js';
import { studentTables } from '../trainer/stages/item-encoder.js';

const root = mkdtempSync(join(tmpdir(), 'item-encoder-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

function randomWeights(seed: number, dims: number[], hidden: number[], d: number): ItemEncoderWeights {
  const rng = new Rng(seed);
  const r = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * s);
  const widths = [dims.reduce((a, b) => a + b, 0), ...hidden, d];
  return {
    modalities: dims.map((dim, k) => ({ name: ['image', 'text', 'audio'][k], dim })),
    mean: dims.map((dm) => r(dm, 3)),
    invStd: dims.map((dm) => Float32Array.from(r(dm), (x) => 0.5 + Math.abs(x))),
    layers: widths.slice(1).map((o, i) => ({ w: r(widths[i] * o, 0.3), b: r(o, 0.1), inDim: widths[i], outDim: o })),
  };
}

test('item_encoder.onnx on onnxruntime-node equals the plain forward (MLP and linear, one and two modalities)', async () => {
  for (const [dims, hidden] of [[[12, 7], [9]], [[5], []]] as [number[], number[]][]) {
    const w = randomWeights(dims.length * 7 + hidden.length, dims, hidden, 6);
    const n = 5;
    const rng = new Rng(99);
    const feats = dims.map((dm) => Float32Array.from({ length: n * dm }, () => rng.normal() * 2 + 1));
    const want = encodeReference(w, feats, n);
    const session = await ort.InferenceSession.create(buildItemEncoderModel(w));
    const feeds = Object.fromEntries(w.modalities.map((m, k) => [m.name, new ort.Tensor('float32', feats[k], [n, m.dim])]));
    const got = (await session.run(feeds))[ITEM_ENCODER_OUTPUT];
    assert.deepEqual(got.dims, [n, 6]);
    const g = got.data as Float32Array;
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(g[i] - want[i]) < 1e-4 * (1 + Math.abs(want[i])), `value ${i}: ${g[i]} vs ${want[i]}`);
    await session.release();
  }
});

test('rankNewItems counts only interactions on new items, over the whole catalog, train items masked', () => {
  // 1 user, 4 items in 1-d: scores = item value; item 3 is the user's train item (masked)
  const users = Float32Array.of(1);
  const items = Float32Array.of(0.1, 0.5, 0.3, 0.9);
  const truth = { indptr: Int32Array.of(0, 2), indices: Int32Array.of(0, 2) };
  const train = { indptr: Int32Array.of(0, 1), indices: Int32Array.of(3) };
  const isNew = Uint8Array.of(1, 0, 1, 0);
  const r1 = rankNewItems(users, items, 1, 4, truth, [train], isNew, 1);
  assert.equal(r1.recall, 0); // top-1 is item 1 (0.5): not a truth item
  const r2 = rankNewItems(users, items, 1, 4, truth, [train], isNew, 2);
  assert.equal(r2.recall, 0.5); // items 1, 2: item 2 is a hit
  assert.equal(r2.interactions, 2);
  const none = rankNewItems(users, items, 1, 4, truth, [train], new Uint8Array(4), 2);
  assert.equal(none.users, 0);
});

test('train → item-encoder checkpoint → export → the server runs item_encoder.onnx like the trainer', async () => {
  const data = join(root, 'data');
  const repo = join(root, 'models');
  assert.equal(runCli('generate', '--out', data, '--users', '300', '--items', '200', '--seed', '3').code, 0);
  let r = runCli('train', '--data', data, '--name', 'm', '--repo', repo, '--student-only', '--epochs', '10', '--eval-every', '5', '--dim', '16', '--batch', '512', '--lr', '5e-3', '--item-encoder-epochs', '10', '--item-encoder-design', 'mlp');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.itemEncoder.design, 'mlp');
  assert.ok(report.itemEncoder.validation.users > 0);
  r = runCli('export', '--name', 'm', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const dir = JSON.parse(r.stdout).dir as string;
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.itemEncoder.file, 'item_encoder.onnx');
  assert.deepEqual(manifest.itemEncoder.modalities, loadDataset(data).modalities.map((m) => ({ name: m.name, dim: m.dim })));
  assert.equal(manifest.itemEncoder.layers.at(-1), 16);

  const model = await loadServingModel(dir, { providers: ['cpu'] });
  try {
    assert.ok(model.embedder, 'the served version has an item encoder');
    const ds = loadDataset(data);
    const { weights } = loadItemEncoder(join(repo, 'm', 'checkpoints', 'item-encoder'));
    const rows = [0, 5, 17];
    const feats = ds.modalities.map((m) => {
      const out = new Float32Array(rows.length * m.dim);
      rows.forEach((row, i) => out.set(m.data.subarray(row * m.dim, (row + 1) * m.dim), i * m.dim));
      return out;
    });
    const want = encodeReference(weights, feats, rows.length);
    const items = rows.map((_, i) => Object.fromEntries(ds.modalities.map((m, k) => [m.name, feats[k].subarray(i * m.dim, (i + 1) * m.dim)])));
    const got = await model.embedder.embed(items);
    assert.equal(got.length, 3);
    got.forEach((v, i) => {
      assert.equal(v.length, 16);
      for (let j = 0; j < 16; j++) assert.ok(Math.abs(v[j] - want[i * 16 + j]) < 1e-4, `item ${i} col ${j}: ${v[j]} vs ${want[i * 16 + j]}`);
    });
    await assert.rejects(model.embedder.embed([{ [ds.modalities[0].name]: new Float32Array(1) }]), /features\./);
  } finally {
    await model.close();
  }

  // through the loader: edit the manifest of a copy (checksums then fail first, so fix the manifest's own entry only)
  const bad = join(repo, 'm', '2');
  runCli('export', '--name', 'm', '--repo', repo, '--hnsw-m', '8');
  const mf = join(bad, 'manifest.json');
  const m2 = JSON.parse(readFileSync(mf, 'utf8'));
  m2.itemEncoder.modalities[0].dim += 1;
  writeFileSync(mf, JSON.stringify(m2));
  await assert.rejects(loadServingModel(bad, { providers: ['cpu'] }), /item_encoder\.onnx: input "\w+" has width \d+, manifest\.json says \d+/);
  m2.itemEncoder.modalities[0].dim -= 1;
  delete m2.files['item_encoder.onnx'];
  writeFileSync(mf, JSON.stringify(m2));
  await assert.rejects(loadServingModel(bad, { providers: ['cpu'] }), /item_encoder\.onnx: not listed in the manifest/);

  // --no-item-encoder: no checkpoint; a stale one fit to another student is not exported
  r = runCli('train', '--data', data, '--name', 'm', '--repo', repo, '--student-only', '--epochs', '5', '--eval-every', '5', '--dim', '16', '--batch', '512', '--seed', '7', '--no-item-encoder');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).itemEncoder, undefined);
  r = runCli('export', '--name', 'm', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const d3 = JSON.parse(r.stdout).dir as string;
  assert.match(r.stderr, /fit to another student checkpoint/);
  assert.equal(existsSync(join(d3, 'item_encoder.onnx')), false);
  assert.equal(JSON.parse(readFileSync(join(d3, 'manifest.json'), 'utf8')).itemEncoder, undefined);
});

test('every design learns the map on generated data whose features carry the item factors, at a scale that keeps the valid ranking', async () => {
  await initEngine('wasm');
  const data = join(root, 'data2');
  const repo = join(root, 'models2');
  assert.equal(runCli('generate', '--out', data, '--users', '400', '--items', '250', '--seed', '5').code, 0);
  const r = runCli('train', '--data', data, '--name', 'g', '--repo', repo, '--student-only', '--epochs', '20', '--eval-every', '5', '--dim', '16', '--batch', '512', '--lr', '5e-3', '--no-item-encoder');
  assert.equal(r.code, 0, r.stderr);
  const ds = loadDataset(data);
  const s = studentTables(join(repo, 'g', 'checkpoints', 'student'), ds);
  const t = { modalities: ds.modalities, nItems: ds.nItems, nUsers: ds.nUsers, dim: s.dim, items: s.items, users: s.users, trainByUser: ds.trainByUser, valByUser: ds.valByUser, itemPopularity: ds.itemPopularity };
  const { held } = splitTrainingItems(ds.itemPopularity, 0.2, 2024);
  assert.ok(held.length >= 40);
  for (const design of ['ridge', 'mlp', 'mlp-bpr'] as const) {
    const f = fitItemEncoder(t, { design, hidden: 32, epochs: 20, lr: 3e-3, batch: 64, bprWeight: 0.5, holdout: 0.2, evalEvery: 5, seed: 2024 });
    // a mapping that learned nothing has cosine ≈ 0; the output scale is the one that keeps the
    // whole valid ranking best, so placing the held-out items must not wreck it
    assert.ok(f.validation.cosine > 0.2, `${design}: cosine ${f.validation.cosine}`);
    assert.ok(OUTPUT_SCALES.includes(f.outputScale!), `${design}: scale ${f.outputScale}`);
    assert.ok(f.validation.overallRecall! >= 0.8 * f.validation.studentOverallRecall!, `${design}: overall ${f.validation.overallRecall} vs the student's ${f.validation.studentOverallRecall}`);
    assert.equal(f.weights.layers.at(-1)!.outDim, 16);
  }
});
