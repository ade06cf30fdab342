/** sequence.onnx (built in TS) against the plain-TS float64 forward of the contract, on random weights and sequences. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { Rng } from '../core/rng.js';
import { buildSequenceModel, SEQUENCE_INPUTS, SEQUENCE_OUTPUTS } from '../repository/onnx-sequence-graph.js';
import { SasrecForward } from '../repository/sasrec-forward.js';
import { sequenceWeights, type SequenceShape } from '../repository/sasrec-weights.js';
import { randomSasrecArrays } from '../test-support/sasrec-checkpoint.js';

/** Random left-padded rows: row b has a random real length in 1..width (at least one row full). */
function randomRows(rng: Rng, shape: SequenceShape, batch: number, width: number): BigInt64Array {
  const rows = new BigInt64Array(batch * width);
  for (let b = 0; b < batch; b++) {
    const len = b === 0 ? width : 1 + rng.int(width);
    for (let j = 0; j < width; j++) rows[b * width + j] = BigInt(j < width - len ? shape.nItems : rng.int(shape.nItems));
  }
  return rows;
}

async function maxDiff(shape: SequenceShape, seed: number, widths: number[], batch = 5): Promise<number> {
  const arrays = randomSasrecArrays(shape, seed);
  const session = await ort.InferenceSession.create(buildSequenceModel(arrays, shape), { executionProviders: ['cpu'] });
  const ref = new SasrecForward(arrays, shape);
  const rng = new Rng(seed + 100);
  let worst = 0;
  try {
    assert.deepEqual([...session.inputNames], SEQUENCE_INPUTS);
    assert.deepEqual([...session.outputNames], SEQUENCE_OUTPUTS);
    for (const width of widths) {
      const rows = randomRows(rng, shape, batch, width);
      const out = (await session.run({ items: new ort.Tensor('int64', rows, [batch, width]) })).user;
      assert.deepEqual(out.dims, [batch, shape.dim]);
      const want = ref.encode(Array.from(rows, Number), batch, width);
      const got = out.data as Float32Array;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    }
  } finally {
    await session.release();
  }
  return worst;
}

test('sequence.onnx matches the float64 forward within 1e-4 (1 head, 2 blocks; widths 1, 2, 7, maxLen)', async () => {
  const shape = { dim: 16, blocks: 2, heads: 1, maxLen: 12, ffDim: 16, nItems: 40 };
  const d = await maxDiff(shape, 1, [1, 2, 7, 12]);
  assert.ok(d <= 1e-4, `max abs difference ${d}`);
});

test('sequence.onnx matches with several heads, ffDim ≠ dim and one block', async () => {
  const shape = { dim: 24, blocks: 1, heads: 3, maxLen: 9, ffDim: 40, nItems: 17, lnEps: 1e-5 };
  const d = await maxDiff(shape, 2, [1, 5, 9], 4);
  assert.ok(d <= 1e-4, `max abs difference ${d}`);
});

test('right-aligned positions: trimming shared left padding leaves the vectors unchanged', async () => {
  const shape = { dim: 8, blocks: 2, heads: 2, maxLen: 10, ffDim: 8, nItems: 30 };
  const arrays = randomSasrecArrays(shape, 3);
  const session = await ort.InferenceSession.create(buildSequenceModel(arrays, shape), { executionProviders: ['cpu'] });
  try {
    const P = BigInt(shape.nItems);
    const narrow = BigInt64Array.from([5n, 6n, 7n, P, 9n, 3n].map(BigInt));
    const wide = BigInt64Array.from([P, P, P, 5n, 6n, 7n, P, P, P, P, 9n, 3n]);
    const a = (await session.run({ items: new ort.Tensor('int64', narrow, [2, 3]) })).user.data as Float32Array;
    const b = (await session.run({ items: new ort.Tensor('int64', wide, [2, 6]) })).user.data as Float32Array;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `value ${i}: ${a[i]} vs ${b[i]}`);
    // The sequence's vector depends on the items: a different last item changes it.
    const other = (await session.run({ items: new ort.Tensor('int64', BigInt64Array.from([5n, 6n, 8n]), [1, 3]) })).user.data as Float32Array;
    assert.ok(other.some((x, i) => Math.abs(x - a[i]) > 1e-3));
  } finally {
    await session.release();
  }
});

test('a missing or misshaped weight is an error naming it', () => {
  const shape = { dim: 8, blocks: 1, heads: 2, maxLen: 4, ffDim: 8, nItems: 5 };
  const arrays = randomSasrecArrays(shape, 4);
  assert.throws(() => buildSequenceModel(arrays.filter((a) => a.name !== 'seq.b0.attn.wk'), shape), /weight "seq\.b0\.attn\.wk" is missing/);
  const bad = arrays.map((a) => (a.name === 'seq.pos_emb' ? { ...a, data: new Float32Array(3) } : a));
  assert.throws(() => buildSequenceModel(bad, shape), /weight "seq\.pos_emb" holds 3 values, expected \[4, 8\]/);
  assert.throws(() => sequenceWeights(arrays, { ...shape, heads: 3 }), /shape\.heads \(3\) must divide shape\.dim \(8\)/);
  assert.throws(() => sequenceWeights(new Map(arrays.map((a) => [a.name, a.data])), { ...shape, maxLen: 0 }), /shape\.maxLen is 0/);
});
