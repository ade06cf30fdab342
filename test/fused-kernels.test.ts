/**
 * The fused propagation (trainer/engine/propagate.ts) and ListKD's row dots (row-dots.ts)
 * against the op compositions they replace: the same values and gradients, on wasm with the
 * SIMD kernels, wasm's JS fallback and cpu; and the transposed CSR the gradients read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { csrTensor, disposeCsr, transposeCsr } from '../trainer/engine/csr-matmul.js';
import { propagateMean, propagateMeanComposed } from '../trainer/engine/propagate.js';
import { rowDots } from '../trainer/engine/row-dots.js';
import { Rng } from '../core/rng.js';

await initEngine('wasm');

/** A random symmetric graph on n nodes (both directions of each edge), rows sorted. */
function randomGraph(rng: Rng, n: number, density: number) {
  const rows: { c: number; v: number }[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (rng.next() < density) {
        const v = rng.next();
        rows[i].push({ c: j, v });
        rows[j].push({ c: i, v });
      }
    }
  }
  const indptr = new Int32Array(n + 1);
  const idx: number[] = [];
  const val: number[] = [];
  rows.forEach((r, i) => {
    r.sort((a, b) => a.c - b.c).forEach((e) => (idx.push(e.c), val.push(e.v)));
    indptr[i + 1] = idx.length;
  });
  return { indptr, indices: Int32Array.from(idx), values: Float32Array.from(val) };
}



function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

test('transposeCsr lists each row of Aᵀ in the row order of A', () => {
  // A = [[0, 1, 2], [3, 0, 4]] (2×3)
  const t = transposeCsr(2, 3, Int32Array.from([0, 2, 4]), Int32Array.from([1, 2, 0, 2]), Float32Array.from([1, 2, 3, 4]));
  assert.deepEqual(Array.from(t.indptr), [0, 1, 2, 4]);
  assert.deepEqual(Array.from(t.indices), [1, 0, 0, 1]);
  assert.deepEqual(Array.from(t.values), [3, 1, 2, 4]);
  assert.throws(() => transposeCsr(1, 2, Int32Array.from([0, 1]), Int32Array.from([2]), Float32Array.from([1])), /outside \[0, 2\)/);
});

for (const { backend, simd } of [
  { backend: 'wasm', simd: true },
  { backend: 'wasm', simd: false },
  { backend: 'cpu', simd: false },
]) {
  const label = `${backend}${simd ? '+simd' : ''}`;

  test(`propagateMean equals the composition of CSR products, adds and the scaling, with its gradient (${label})`, async () => {
    await tf.setBackend(backend);
    process.env.PROMPTMM_NO_SIMD_KERNELS = simd ? '0' : '1';
    const rng = new Rng(5);
    const n = 23;
    const g = randomGraph(rng, n, 0.25);
    const adj = csrTensor(n, n, g.indptr, g.indices, g.values);
    for (const cols of [20, 8, 6]) {
      for (const layers of [0, 1, 2, 4]) {
        const x = tf.tensor2d(Float32Array.from({ length: n * cols }, () => rng.normal()), [n, cols]);
        const w = tf.tensor2d(Float32Array.from({ length: n * cols }, () => rng.normal()), [n, cols]);
        const what = `cols ${cols}, ${layers} layers`;
        // the same float32 sums in the same order: equal to the last bit
        assert.deepEqual(Array.from(propagateMean(adj, x, layers).dataSync()), Array.from(propagateMeanComposed(adj, x, layers).dataSync()), `${what}: values`);
        const g1 = tf.grad((h: tf.Tensor) => tf.sum(tf.mul(propagateMean(adj, h as tf.Tensor2D, layers), w)))(x);
        const g2 = tf.grad((h: tf.Tensor) => tf.sum(tf.mul(propagateMeanComposed(adj, h as tf.Tensor2D, layers), w)))(x);
        assert.deepEqual(Array.from(g1.dataSync()), Array.from(g2.dataSync()), `${what}: gradient`);
      }
    }
    disposeCsr(adj);
  });

  test(`rowDots: values and both gradients against the batched matMul (${label})`, async () => {
    await tf.setBackend(backend);
    process.env.PROMPTMM_NO_SIMD_KERNELS = simd ? '0' : '1';
    const rng = new Rng(9);
    for (const d of [8, 5]) {
      const [r, k] = [6, 3];
      const a = tf.tensor3d(Float32Array.from({ length: r * k * d }, () => rng.normal()), [r, k, d]);
      const b = tf.tensor2d(Float32Array.from({ length: r * d }, () => rng.normal()), [r, d]);
      const w = tf.tensor2d(Float32Array.from({ length: r * k }, () => rng.normal()), [r, k]);
      const ref = (aa: tf.Tensor, bb: tf.Tensor) => tf.matMul(aa as tf.Tensor3D, (bb as tf.Tensor2D).reshape([r, d, 1]) as tf.Tensor3D).reshape([r, k]);
      assertClose(rowDots(a, b).dataSync(), ref(a, b).dataSync(), 1e-5, `d ${d}: values`);
      const loss = (f: (aa: tf.Tensor, bb: tf.Tensor) => tf.Tensor) => (aa: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(f(aa, bb), w));
      const [ga, gb] = tf.grads(loss((aa, bb) => rowDots(aa as tf.Tensor3D, bb as tf.Tensor2D)))([a, b]);
      const [ra, rb] = tf.grads(loss(ref))([a, b]);
      assertClose(ga.dataSync(), ra.dataSync(), 1e-5, `d ${d}: da`);
      assertClose(gb.dataSync(), rb.dataSync(), 1e-5, `d ${d}: db`);
    }
    assert.throws(() => rowDots(tf.zeros([2, 3, 4]) as tf.Tensor3D, tf.zeros([2, 5]) as tf.Tensor2D), /do not match/);
  });
}

test('wasm Sum over a matrix rows (the column-sum patch), with keepDims, and the sums it leaves alone', async () => {
  await tf.setBackend('wasm');
  process.env.PROMPTMM_NO_SIMD_KERNELS = '0';
  const rng = new Rng(13);
  const [rows, cols] = [37, 12];
  const v = Float32Array.from({ length: rows * cols }, () => rng.normal());
  const x = tf.tensor2d(v, [rows, cols]);
  const ref = Array.from({ length: cols }, (_, c) => Array.from({ length: rows }, (_, r) => v[r * cols + c]).reduce((a, b) => a + b, 0));
  assertClose(tf.sum(x, 0).dataSync(), ref, 1e-5, 'sum axis 0');
  assert.deepEqual(tf.sum(x, 0, true).shape, [1, cols]);
  assertClose(tf.sum(x, -2, true).dataSync(), ref, 1e-5, 'sum axis -2, keepDims');
  assertClose(tf.sum(x, 1).dataSync(), Array.from({ length: rows }, (_, r) => Array.from(v.subarray(r * cols, (r + 1) * cols)).reduce((a, b) => a + b, 0)), 1e-5, 'sum axis 1');
  assert.ok(Math.abs(tf.sum(x).dataSync()[0] - ref.reduce((a, b) => a + b, 0)) < 1e-3, 'sum of all');
  assert.deepEqual(Array.from(tf.sum(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32'), 0).dataSync()), [5, 7, 9], 'int32 (original kernel)');
});
