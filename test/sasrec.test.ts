/** SASRec in tfjs: the contract's forward pass (against a float64 reference), trimming, padding row, training on a sequential pattern. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { SasRec, type SasRecShape } from '../trainer/models/sasrec.js';
import { sequenceWeightShapes } from '../repository/sasrec-weights.js';
import { Rng } from '../core/rng.js';
import { writeSequentialDataset } from '../test-support/sequential-data.js';
import { SasrecForward } from '../repository/sasrec-forward.js';
import { loadDataset } from '../data/dataset.js';
import { SequenceWindows, userSequences } from '../data/sequences.js';
import { FusedAdam } from '../trainer/engine/adam.js';
import { evaluateSequential } from '../trainer/sequential-eval.js';
import { evaluatePopularity } from '../trainer/eval.js';

await initEngine('wasm');
const root = mkdtempSync(join(tmpdir(), 'sasrec-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

/** Every weight random (LayerNorm γ, β and biases too), so no term of the forward pass hides behind a 1 or a 0. */
function randomWeights(s: SasRecShape, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const m = new Map<string, Float32Array>();
  for (const [name, shape] of sequenceWeightShapes(s)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const scale = name.endsWith('.g') ? 0 : name.includes('emb') ? 0.5 : 0.3;
    const v = Float32Array.from({ length: n }, () => (name.endsWith('.g') ? 1 + 0.3 * rng.normal() : scale * rng.normal()));
    if (name === 'seq.item_emb') v.fill(0, s.nItems * s.dim);
    m.set(name, v);
  }
  return m;
}

test('encodeLast matches a float64 forward of the contract (2 blocks, 2 heads, padding, trimmed windows) within 1e-4', () => {
  const shape: SasRecShape = { dim: 8, blocks: 2, heads: 2, maxLen: 7, ffDim: 12, nItems: 11 };
  const w = randomWeights(shape, 5);
  const model = new SasRec(shape, w);
  const rng = new Rng(9);
  const pad = shape.nItems;
  const lens = [7, 1, 4, 6, 2]; // one full window, one single item, repeats allowed
  const width = 7;
  const seqs = lens.map((n) => Array.from({ length: n }, () => rng.int(shape.nItems)));
  const rows = new Int32Array(seqs.length * width).fill(pad);
  seqs.forEach((s, b) => rows.set(s, (b + 1) * width - s.length));
  const got = model.encodeLast(rows, seqs.length, width);
  let maxDiff = 0;
  const reference = new SasrecForward(w, shape); // the export's float64 forward of the contract
  seqs.forEach((s, b) => {
    const ref = reference.encode([...Array(width - s.length).fill(pad), ...s], 1, width);
    for (let c = 0; c < shape.dim; c++) maxDiff = Math.max(maxDiff, Math.abs(ref[c] - got[b * shape.dim + c]));
  });
  assert.ok(maxDiff <= 1e-4, `max abs diff ${maxDiff}`);
  // trimmed to the longest real sequence of a batch: the same vectors (right-aligned positions)
  const short = [seqs[2], seqs[4]];
  const w4 = 4;
  const rows4 = new Int32Array(2 * w4).fill(pad);
  short.forEach((s, b) => rows4.set(s, (b + 1) * w4 - s.length));
  const trimmed = model.encodeLast(rows4, 2, w4);
  for (const [b, orig] of [[0, 2], [1, 4]] as const) {
    for (let c = 0; c < shape.dim; c++) assert.ok(Math.abs(trimmed[b * shape.dim + c] - got[orig * shape.dim + c]) < 1e-5);
  }
  model.dispose();
});

test('a width beyond maxLen and a heads count that does not divide dim are refused', () => {
  assert.throws(() => new SasRec({ dim: 8, blocks: 1, heads: 3, maxLen: 4, ffDim: 8, nItems: 5 }, { seed: 1 }), /--seq-heads 3 must divide --dim 8/);
  const m = new SasRec({ dim: 4, blocks: 1, heads: 1, maxLen: 3, ffDim: 4, nItems: 5 }, { seed: 1 });
  assert.throws(() => m.encodeLast(new Int32Array(4).fill(5), 1, 4), /width 4 outside 1\.\.3/);
  m.dispose();
});

test('training on a sequential pattern: the loss falls, the padding row stays zero, and it beats popularity (full and sampled softmax)', () => {
  const dir = join(root, 'walk');
  writeSequentialDataset(dir, { users: 150, items: 30, minLen: 5, maxLen: 12, seed: 3 });
  const data = loadDataset(dir);
  const shape: SasRecShape = { dim: 16, blocks: 1, heads: 1, maxLen: 10, ffDim: 16, nItems: data.nItems };
  for (const loss of ['full', 'sampled'] as const) {
    const model = new SasRec(shape, { seed: 2 });
    model.setSampling(data.itemPopularity);
    const windows = new SequenceWindows(userSequences(data, 0), shape.maxLen, data.nItems, new Rng(4));
    const rng = new Rng(5);
    const opt = new FusedAdam(1e-2);
    const losses: number[] = [];
    for (let epoch = 0; epoch < 12; epoch++) {
      windows.shuffle();
      let sum = 0;
      for (let s = 0; s < windows.size; s += 50) {
        const l = opt.minimize(() => model.loss(windows.batch(s, 50), { dropout: 0.1, loss, negatives: 10 }, rng), model.variables);
        sum += l.dataSync()[0];
        l.dispose();
      }
      losses.push(sum);
    }
    assert.ok(losses[losses.length - 1] < 0.7 * losses[0], `${loss}: loss ${losses[0]} → ${losses[losses.length - 1]}`);
    const table = model.arrays().find((a) => a.name === 'seq.item_emb')!.data;
    assert.ok(table.subarray(data.nItems * shape.dim).every((x) => x === 0), 'padding row changed');
    const ours = evaluateSequential(model, data, { split: 'test', ks: [10] });
    const pop = evaluatePopularity(data, { split: 'test', ks: [10] });
    assert.ok(ours['ndcg@10'] > pop['ndcg@10'] + 0.2, `${loss}: sasrec ndcg@10 ${ours['ndcg@10']} vs popularity ${pop['ndcg@10']}`);
    model.dispose();
    opt.dispose();
  }
  assert.equal(tf.memory().numTensors < 50, true, `tensors leak: ${tf.memory().numTensors}`);
});
