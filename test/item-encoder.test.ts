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
import { buildItemEncoderModel, checkItemEncoderWeights, encodeReference, ITEM_ENCODER_OUTPUT, neighborKeys, type ItemEncoderWeights } from '../repository/onnx-item-encoder-graph.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { encoderArrays, loadItemEncoder, type ItemEncoderMeta } from '../trainer/stages/item-encoder.js';
import { saveCheckpoint } from '../trainer/checkpoint.js';
import { loadDataset } from '../data/dataset.js';
import { ColdEvaluator, fitItemEncoder, neighborGridSetup, NEIGHBOR_KS, NEIGHBOR_TAUS, normalization, OUTPUT_SCALES, rankNewItems, splitTrainingItems, validateEncoded } from '../trainer/models/item-encoder.js';
import { evaluateNeighborGrid } from '../trainer/models/neighbor-grid.js';
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

/** onnxruntime's output for `feats` ([n, d_m] per modality). */
async function runOnnx(w: ItemEncoderWeights, feats: Float32Array[], n: number): Promise<{ dims: readonly number[]; data: Float32Array }> {
  const session = await ort.InferenceSession.create(buildItemEncoderModel(w));
  try {
    const feeds = Object.fromEntries(w.modalities.map((m, k) => [m.name, new ort.Tensor('float32', feats[k], [n, m.dim])]));
    const got = (await session.run(feeds))[ITEM_ENCODER_OUTPUT];
    return { dims: got.dims, data: got.data as Float32Array };
  } finally {
    await session.release();
  }
}

/** A neighbors encoder over `n` random training items (their keys normalised as the design does). */
function randomNeighbors(seed: number, dims: number[], n: number, d: number, k: number, tau: number, rescale: boolean): ItemEncoderWeights {
  const rng = new Rng(seed);
  const base = randomWeights(seed, dims, [], d);
  const train = dims.map((dm) => Float32Array.from({ length: n * dm }, () => rng.normal() * 2 + 1));
  const keys = Float32Array.from(neighborKeys(base, train, n));
  const values = Float32Array.from({ length: n * d }, () => rng.normal() * (0.5 + rng.next()));
  return { ...base, layers: [], neighbors: { keys, values, n, keyDim: dims.reduce((a, b) => a + b, 0), outDim: d, k, tau, rescale } };
}

test('item_encoder.onnx of the neighbors design (MatMul → TopK → Softmax → Gather → sum) equals its plain forward within 1e-5', async () => {
  for (const [dims, k, tau, rescale] of [[[12, 7], 5, 0.05, false], [[12, 7], 5, 0.05, true], [[9], 1, 1, false], [[6, 4, 3], 20, 0.3, true]] as [number[], number, number, boolean][]) {
    const w = randomNeighbors(dims.length * 11 + k, dims, 40, 6, k, tau, rescale);
    checkItemEncoderWeights(w, 6);
    const n = 7;
    const rng = new Rng(k + 5);
    const feats = dims.map((dm) => Float32Array.from({ length: n * dm }, () => rng.normal() * 2 + 1));
    const want = encodeReference(w, feats, n);
    const got = await runOnnx(w, feats, n);
    assert.deepEqual(got.dims, [n, 6]);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got.data[i] - want[i]) < 1e-5, `k ${k} τ ${tau} rescale ${rescale}, value ${i}: ${got.data[i]} vs ${want[i]}`);
  }
});

test('the neighbors forward: an item with a training item\'s features and k = 1 gets its vector; rescale keeps the neighbours\' norm', () => {
  const w = randomNeighbors(3, [8, 5], 30, 4, 1, 0.1, false);
  const nb = w.neighbors!;
  // rebuild the training rows' raw features from a fresh draw of the same seed (randomNeighbors draws them first)
  const rng = new Rng(3);
  const train = [8, 5].map((dm) => Float32Array.from({ length: 30 * dm }, () => rng.normal() * 2 + 1));
  const row = 17;
  const one = train.map((f, k) => f.slice(row * [8, 5][k], (row + 1) * [8, 5][k]));
  assert.deepEqual(Array.from(encodeReference(w, one, 1)), Array.from(nb.values.subarray(row * 4, (row + 1) * 4)));
  // k = 5, uniform weights (large τ): the mean of five vectors is shorter than they are, unless rescaled
  const wide = { ...w, neighbors: { ...nb, k: 5, tau: 1e6 } };
  const norm = (v: Float32Array) => Math.hypot(...v);
  const plain = encodeReference(wide, one, 1);
  const kept = encodeReference({ ...wide, neighbors: { ...wide.neighbors, rescale: true } }, one, 1);
  assert.ok(Math.abs(norm(kept) - norm(plain)) > 1e-3);
  const cos = Array.from(plain).reduce((s, x, j) => s + x * kept[j], 0) / (norm(plain) * norm(kept));
  assert.ok(cos > 1 - 1e-9, 'rescaling keeps the direction');
});

test('outputNorm: each output of a dense encoder rescaled to that norm, in ONNX as in the reference', async () => {
  const w = { ...randomWeights(21, [10, 4], [8], 5), outputNorm: 2.5 };
  const n = 6;
  const rng = new Rng(8);
  const feats = [10, 4].map((dm) => Float32Array.from({ length: n * dm }, () => rng.normal()));
  const want = encodeReference(w, feats, n);
  for (let r = 0; r < n; r++) assert.ok(Math.abs(Math.hypot(...want.subarray(r * 5, (r + 1) * 5)) - 2.5) < 1e-5);
  const got = await runOnnx(w, feats, n);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got.data[i] - want[i]) < 1e-5, `value ${i}: ${got.data[i]} vs ${want[i]}`);
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
  // the fast evaluator ranks as rankNewItems does
  const ev = new ColdEvaluator(t, held);
  const rng = new Rng(4);
  const enc = Float32Array.from({ length: held.length * s.dim }, () => rng.normal() * 0.3);
  const fast = ev.evaluate(enc);
  const slow = validateEncoded(t, held, enc);
  assert.ok(Math.abs(fast.recall - slow.recall) < 1e-9 && Math.abs(fast.ndcg - slow.ndcg) < 1e-9, `${JSON.stringify(fast)} vs ${slow.recall} ${slow.ndcg}`);
  // the neighbors grid in one pass over the users (neighbor-grid.ts) gives each candidate's ColdEvaluator figures on each fold, bit for bit
  {
    const split = splitTrainingItems(ds.itemPopularity, 0.2, 2024);
    const all = Int32Array.from([...split.fit, ...split.held]).sort();
    const norm = ds.modalities.map((m) => normalization(m, ds.nItems));
    const base = { modalities: ds.modalities.map((m) => ({ name: m.name, dim: m.dim })), mean: norm.map((n) => n.mean), invStd: norm.map((n) => n.invStd) };
    const g = neighborGridSetup(t, base, split.fit, split.held, all, 2024);
    assert.ok(g.folds.length > 1 && g.candidates.length === NEIGHBOR_KS.length * NEIGHBOR_TAUS.length * 2);
    const grid = evaluateNeighborGrid(t, g.folds, g.candidates, g.place);
    g.folds.forEach((fold, f) => {
      const one = new ColdEvaluator(t, fold.held);
      g.candidates.forEach((c, ci) => assert.deepEqual(grid[ci][f], one.evaluate(g.place(f, c)), `fold ${f}, ${JSON.stringify(c)}`));
    });
  }
  for (const design of ['ridge', 'mlp', 'mlp-bpr', 'neighbors'] as const) {
    const f = fitItemEncoder(t, { design, hidden: 32, epochs: 20, lr: 3e-3, batch: 64, bprWeight: 0.5, holdout: 0.2, evalEvery: 5, seed: 2024 });
    // a mapping that learned nothing has cosine ≈ 0; the output scale is the one that keeps the
    // whole valid ranking best, so placing the held-out items must not wreck it
    assert.ok(f.validation.cosine > 0.2, `${design}: cosine ${f.validation.cosine}`);
    assert.ok(f.validation.overallRecall! >= 0.8 * f.validation.studentOverallRecall!, `${design}: overall ${f.validation.overallRecall} vs the student's ${f.validation.studentOverallRecall}`);
    checkItemEncoderWeights(f.weights, 16);
    if (design !== 'neighbors') {
      assert.ok(OUTPUT_SCALES.includes(f.outputScale!), `${design}: scale ${f.outputScale}`);
      assert.equal(f.weights.layers.at(-1)!.outDim, 16);
      continue;
    }
    // the grid on the held-out items, the chosen settings the best of it; the table holds every training item
    assert.equal(f.grid!.length, NEIGHBOR_KS.filter((k) => k <= 200).length * NEIGHBOR_TAUS.length * 2);
    const bestOverall = Math.max(...f.grid!.map((g) => g.overallRecall));
    const chosen = f.grid!.find((g) => g.k === f.neighbors!.k && g.tau === f.neighbors!.tau && g.rescale === f.neighbors!.rescale)!;
    assert.equal(chosen.overallRecall, bestOverall);
    const nTrained = Array.from(ds.itemPopularity).filter((p) => p > 0).length;
    assert.equal(f.weights.neighbors!.n, nTrained);
    // checkpoint round trip, then ONNX on every item equals the reference
    const dir = join(root, 'enc-neighbors');
    saveCheckpoint(dir, { kind: 'item-encoder', modalities: f.weights.modalities, layers: [], neighbors: { ...f.weights.neighbors!, keys: undefined, values: undefined } } as unknown as ItemEncoderMeta, encoderArrays(f.weights));
    const back = loadItemEncoder(dir).weights;
    assert.deepEqual(back.neighbors!.values, f.weights.neighbors!.values);
    const want = encodeReference(back, ds.modalities.map((m) => m.data), ds.nItems);
    const got = await runOnnx(back, ds.modalities.map((m) => m.data), ds.nItems);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got.data[i] - want[i]) < 1e-5, `value ${i}: ${got.data[i]} vs ${want[i]}`);
  }
  // --item-encoder-criterion new-items: the grid's best new-item recall is kept instead
  const fNew = fitItemEncoder(t, { design: 'neighbors', hidden: 32, epochs: 20, lr: 3e-3, batch: 64, bprWeight: 0.5, holdout: 0.2, evalEvery: 5, seed: 2024, criterion: 'new-items' });
  const picked = fNew.grid!.find((g) => g.k === fNew.neighbors!.k && g.tau === fNew.neighbors!.tau && g.rescale === fNew.neighbors!.rescale)!;
  assert.equal(picked.recall, Math.max(...fNew.grid!.map((g) => g.recall)));
});
