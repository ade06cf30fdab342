/**
 * The kernels the project adds to tfjs (segment sum, gather rows, CSR × dense) against
 * plain references: values and gradients, on every backend here, SIMD and JS paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { csrMatMul, csrTensor, disposeCsr } from '../trainer/engine/csr-matmul.js';
import { gatherRows } from '../trainer/engine/gather-rows.js';
import { Rng } from '../core/rng.js';

await initEngine('wasm');

function randomCsr(rng: Rng, rows: number, cols: number, density: number) {
  const indptr = new Int32Array(rows + 1);
  const idx: number[] = [];
  const val: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) if (rng.next() < density) (idx.push(c), val.push(rng.normal()));
    indptr[r + 1] = idx.length;
  }
  return { indptr, indices: Int32Array.from(idx), values: Float32Array.from(val) };
}

/** Dense A from CSR, as nested arrays, for the reference products. */
function dense(c: { indptr: Int32Array; indices: Int32Array; values: Float32Array }, rows: number, cols: number): number[][] {
  const a = Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  for (let r = 0; r < rows; r++) for (let k = c.indptr[r]; k < c.indptr[r + 1]; k++) a[r][c.indices[k]] += c.values[k];
  return a;
}

function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

const transpose = (a: number[][]) => a[0].map((_, j) => a.map((row) => row[j]));

function assertClose(actual: ArrayLike<number>, expected: number[], tol = 1e-4, what = 'value'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

// Every combination the trainer can run: wasm with the SIMD kernels, wasm's JS fallback,
// and the cpu backend. cols 8 takes the SIMD path; cols 5 (not a multiple of 4) never does.
const variants = [
  { backend: 'wasm', simd: true },
  { backend: 'wasm', simd: false },
  { backend: 'cpu', simd: false },
];

for (const { backend, simd } of variants) {
  for (const cols of [8, 5]) {
    const label = `${backend}${simd ? '+simd' : ''} cols=${cols}`;

    test(`CSR × dense and its transpose, values and gradients (${label})`, async () => {
      await tf.setBackend(backend);
      process.env.PROMPTMM_NO_SIMD_KERNELS = simd ? '0' : '1';
      const rng = new Rng(7);
      const rows = 13;
      const inner = 9;
      const c = randomCsr(rng, rows, inner, 0.3);
      const A = dense(c, rows, inner);
      const a = csrTensor(rows, inner, c.indptr, c.indices, c.values);
      const xv = Array.from({ length: inner }, () => Array.from({ length: cols }, () => rng.normal()));
      const x = tf.tensor2d(xv);
      // forward
      assertClose(csrMatMul(a, x).dataSync(), matmul(A, xv).flat(), 1e-5, 'A·x');
      const yv = Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
      const y = tf.tensor2d(yv);
      assertClose(csrMatMul(a, y, true).dataSync(), matmul(transpose(A), yv).flat(), 1e-5, 'Aᵀ·y');
      // gradient of sum(W ∘ A·x) in x is Aᵀ·W
      const W = Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
      const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(csrMatMul(a, xx as tf.Tensor2D), tf.tensor2d(W))))(x);
      assertClose(g.dataSync(), matmul(transpose(A), W).flat(), 1e-5, 'd/dx');
      const W2 = Array.from({ length: inner }, () => Array.from({ length: cols }, () => rng.normal()));
      const g2 = tf.grad((yy: tf.Tensor) => tf.sum(tf.mul(csrMatMul(a, yy as tf.Tensor2D, true), tf.tensor2d(W2))))(y);
      assertClose(g2.dataSync(), matmul(A, W2).flat(), 1e-5, 'd/dy (transposed)');
      disposeCsr(a);
    });

    test(`gather rows and the segment sum as its gradient (${label})`, async () => {
      await tf.setBackend(backend);
      process.env.PROMPTMM_NO_SIMD_KERNELS = simd ? '0' : '1';
      const rng = new Rng(11);
      const n = 10;
      const xv = Array.from({ length: n }, () => Array.from({ length: cols }, () => rng.normal()));
      const ids = [3, 0, 3, 9, 3, 7];
      const x = tf.tensor2d(xv);
      const idx = tf.tensor1d(ids, 'int32');
      assertClose(gatherRows(x, idx).dataSync(), ids.flatMap((i) => xv[i]).map(Math.fround), 0, 'gather');
      const W = ids.map(() => Array.from({ length: cols }, () => rng.normal()));
      const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(gatherRows(xx as tf.Tensor2D, idx), tf.tensor2d(W))))(x);
      const expected = Array.from({ length: n }, () => new Array<number>(cols).fill(0));
      ids.forEach((i, r) => W[r].forEach((w, c) => (expected[i][c] += w)));
      assertClose(g.dataSync(), expected.flat(), 1e-6, 'segment sum');
      // tf.unsortedSegmentSum itself (registered for wasm, replaced on cpu), dropping ids out of range
      const seg = tf.unsortedSegmentSum(tf.tensor2d(W), tf.tensor1d([1, 1, 0, 4, -1, 2], 'int32'), 3);
      const ref = [0, 1, 2].map((s) => W.reduce((acc, row, r) => ([1, 1, 0, 4, -1, 2][r] === s ? acc.map((v, c) => v + row[c]) : acc), new Array<number>(cols).fill(0)));
      assertClose(seg.dataSync(), ref.flat(), 1e-6, 'unsortedSegmentSum');
      assert.throws(() => gatherRows(x, tf.tensor1d([0, n], 'int32')), /outside \[0, 10\)/);
    });
  }
}

test('wasm kernel patches: transposed matMul, contiguous slices and splits, shared clones', async () => {
  await tf.setBackend('wasm');
  const rng = new Rng(21);
  // float32-representable values, so that copies compare exactly
  const av = Array.from({ length: 5 }, () => Array.from({ length: 3 }, () => Math.fround(rng.normal())));
  const bv = Array.from({ length: 5 }, () => Array.from({ length: 4 }, () => Math.fround(rng.normal())));
  const a = tf.tensor2d(av);
  const b = tf.tensor2d(bv);
  assertClose(tf.matMul(a, b, true, false).dataSync(), matmul(transpose(av), bv).flat(), 1e-5, 'aᵀ·b');
  assertClose(tf.matMul(b, a, true, false).dataSync(), matmul(transpose(bv), av).flat(), 1e-5, 'bᵀ·a');
  assertClose(tf.matMul(tf.transpose(a), tf.transpose(b), false, true).dataSync(), matmul(transpose(av), bv).flat(), 1e-5, 'aᵀ·(bᵀ)ᵀ');
  // rows (contiguous) and columns (not) of a matrix
  const x = tf.tensor2d(bv);
  assertClose(tf.slice(x, [1, 0], [3, 4]).dataSync(), bv.slice(1, 4).flat(), 0, 'row slice');
  assertClose(tf.slice(x, [0, 1], [5, 2]).dataSync(), bv.map((r) => r.slice(1, 3)).flat(), 0, 'column slice');
  const parts = tf.split(x, [2, 3], 0);
  assertClose(parts[1].dataSync(), bv.slice(2).flat(), 0, 'split rows');
  const cols = tf.split(x, 2, 1);
  assertClose(cols[1].dataSync(), bv.map((r) => r.slice(2)).flat(), 0, 'split columns');
  // a clone shares data but outlives the original
  const c = tf.clone(x);
  x.dispose();
  assertClose(c.dataSync(), bv.flat(), 0, 'clone after the original is gone');
  const v = tf.variable(c);
  v.assign(tf.zerosLike(c));
  assertClose(c.dataSync(), bv.flat(), 0, 'assigning a variable leaves its initial value alone');
});

test('restores the default backend', async () => {
  delete process.env.PROMPTMM_NO_SIMD_KERNELS;
  assert.ok(await tf.setBackend('wasm'));
});

test('the fused Adam step matches tf.train.adam', async () => {
  for (const [backend, simd] of [['wasm', true], ['wasm', false], ['cpu', false]] as const) {
    await tf.setBackend(backend);
    process.env.PROMPTMM_NO_SIMD_KERNELS = simd ? '0' : '1';
    const { FusedAdam } = await import('../trainer/engine/adam.js');
    const rng = new Rng(9);
    const init = Float32Array.from({ length: 4 * 7 }, () => rng.normal()); // 28 values: a SIMD body and a tail
    const target = tf.tensor2d(Float32Array.from({ length: 28 }, () => rng.normal()), [4, 7]);
    const a = tf.variable(tf.tensor2d(init, [4, 7]));
    const b = tf.variable(tf.tensor2d(init, [4, 7]));
    const ref = tf.train.adam(0.05);
    const ours = new FusedAdam(0.05);
    for (let step = 0; step < 5; step++) {
      ref.minimize(() => tf.sum(tf.square(tf.sub(a, target))) as tf.Scalar, false, [a]);
      ours.minimize(() => tf.sum(tf.square(tf.sub(b, target))) as tf.Scalar, [b]).dispose();
    }
    assertClose(b.dataSync(), Array.from(a.dataSync()), 1e-5, `${backend}${simd ? '+simd' : ''} Adam`);
    assert.equal(ours.iterations, 5);
    tf.dispose([a, b, target]);
    ref.dispose();
    ours.dispose();
  }
  delete process.env.PROMPTMM_NO_SIMD_KERNELS;
  await tf.setBackend('wasm');
});
