/** The trained model and the served one agree: SASRec's tfjs forward (trainer) against sequence.onnx (export), on the same weights. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { Rng } from '../core/rng.js';
import { buildSequenceModel } from '../repository/onnx-sequence-graph.js';
import { initEngine } from '../trainer/engine/backend.js';
import { SasRec } from '../trainer/models/sasrec.js';

test('sequence.onnx reproduces the tfjs SASRec forward (max abs difference ≤ 1e-4) on random weights and widths 1..maxLen', async () => {
  await initEngine();
  const shape = { dim: 16, blocks: 2, heads: 2, maxLen: 10, ffDim: 16, nItems: 50 };
  const model = new SasRec(shape, { seed: 7 });
  const arrays = model.arrays();
  // Trained weights are not the initial ones: perturb every array so no initialisation symmetry hides a mismatch.
  const rng = new Rng(8);
  for (const a of arrays) for (let i = 0; i < a.data.length; i++) a.data[i] += (rng.next() - 0.5) * 0.2;
  for (const a of arrays) if (a.name === 'seq.item_emb') a.data.fill(0, shape.nItems * shape.dim);
  const trained = new SasRec(shape, new Map(arrays.map((a) => [a.name, a.data])));
  const session = await ort.InferenceSession.create(buildSequenceModel(arrays, shape), { executionProviders: ['cpu'] });
  let worst = 0;
  try {
    for (const width of [1, 3, 10]) {
      const batch = 6;
      const rows = new Int32Array(batch * width);
      for (let b = 0; b < batch; b++) {
        const len = b === 0 ? width : 1 + rng.int(width);
        for (let j = 0; j < width; j++) rows[b * width + j] = j < width - len ? shape.nItems : rng.int(shape.nItems);
      }
      const want = trained.encodeLast(rows, batch, width);
      const out = await session.run({ items: new ort.Tensor('int64', BigInt64Array.from(rows, (v) => BigInt(v)), [batch, width]) });
      const got = out.user.data as Float32Array;
      assert.equal(got.length, want.length);
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    }
  } finally {
    await session.release();
    model.dispose();
    trained.dispose();
  }
  assert.ok(worst <= 1e-4, `max abs difference ${worst}`);
});
