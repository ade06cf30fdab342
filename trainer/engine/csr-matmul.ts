/**
 * `PromptmmCsrMatMul`: sparse (CSR) × dense, optionally with the sparse matrix transposed,
 * with its gradient (dX = Aᵀ·dY), and the CSR tensors it takes (A and Aᵀ, so that both
 * directions read rows: no scatter). LightGCN's propagation is made of this op (propagate.ts fuses it on wasm).
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, TensorInfo } from '@tensorflow/tfjs';
import { isWasm, output, simdFor, type KernelArgs } from './kernel-io.js';

export const CSR_MATMUL = 'PromptmmCsrMatMul';

/** out = A·x with A in CSR (indptr, indices, values), x dense [*, cols]; entries summed in row order from 0. */
function csrMatMulInto(
  out: Float32Array,
  indptr: ArrayLike<number>,
  indices: ArrayLike<number>,
  values: ArrayLike<number>,
  x: ArrayLike<number>,
  cols: number,
): void {
  const rows = indptr.length - 1;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let k = indptr[r], end = indptr[r + 1]; k < end; k++) {
      const w = values[k];
      const xi = indices[k] * cols;
      for (let c = 0; c < cols; c++) out[o + c] += w * x[xi + c];
    }
  }
}

/**
 * The op's inputs: the CSR of A (indptr, indices, values) and of Aᵀ (tIndptr, tIndices,
 * tValues), and x. The kernel computes A·x, reading A by rows; the gradient is the same op with
 * A and Aᵀ swapped, so neither direction scatters. Aᵀ's rows list their entries in A's row order
 * (csrTensor), which sums each output in the order a scatter over A's rows did.
 */
type CsrInputs = Record<'indptr' | 'indices' | 'values' | 'tIndptr' | 'tIndices' | 'tValues' | 'x', TensorInfo>;

export function csrMatMulKernel(args: KernelArgs): TensorInfo {
  const { indptr, indices, values, x } = args.inputs as CsrInputs;
  const nRows = indptr.shape[0] - 1;
  const cols = x.shape[1];
  const simd = simdFor(args.backend, cols);
  if (simd && isWasm(args.backend)) {
    const out = args.backend.makeOutput([nRows, cols], 'float32');
    simd.spmm(simd.ptr(out), simd.ptr(indptr), simd.ptr(indices), simd.ptr(values), simd.ptr(x), nRows, cols, 0, 0, 1, 0);
    return out;
  }
  return output(args.backend, [nRows, cols], (out, read) => {
    csrMatMulInto(out, read(indptr), read(indices), read(values), read(x), cols);
  });
}

export const csrMatMulGradient: GradConfig = {
  kernelName: CSR_MATMUL,
  inputsToSave: ['indptr', 'indices', 'values', 'tIndptr', 'tIndices', 'tValues'],
  gradFunc: (dy, saved) => {
    const [indptr, indices, values, tIndptr, tIndices, tValues] = saved;
    // d(A·x)/dx = Aᵀ·dy.
    return { x: () => csrRun([tIndptr, tIndices, tValues], [indptr, indices, values], dy as tf.Tensor2D), ...noGraphGradients(saved) };
  },
};

/** The graph's six tensors (a CSR and its transpose, saved in that order) get no gradient: zeros of their shapes. */
export function noGraphGradients(saved: tf.Tensor[]): Record<'indptr' | 'indices' | 'values' | 'tIndptr' | 'tIndices' | 'tValues', () => tf.Tensor> {
  const [indptr, indices, values, tIndptr, tIndices, tValues] = saved;
  const none = (t: tf.Tensor) => () => tf.zerosLike(t);
  return { indptr: none(indptr), indices: none(indices), values: none(values), tIndptr: none(tIndptr), tIndices: none(tIndices), tValues: none(tValues) };
}

type CsrParts = [indptr: tf.Tensor, indices: tf.Tensor, values: tf.Tensor];

function csrRun(a: CsrParts, at: CsrParts, x: tf.Tensor2D): tf.Tensor2D {
  const [indptr, indices, values] = a;
  const [tIndptr, tIndices, tValues] = at;
  return tf.engine().runKernel(CSR_MATMUL, { indptr, indices, values, tIndptr, tIndices, tValues, x }) as tf.Tensor2D;
}

/** A sparse matrix in CSR held as tensors on the active backend, with its transpose in CSR. */
export interface CsrTensor {
  nRows: number;
  nCols: number;
  indptr: tf.Tensor1D; // int32 [nRows + 1]
  indices: tf.Tensor1D; // int32 [nnz]
  values: tf.Tensor1D; // float32 [nnz]
  /** Aᵀ: int32 [nCols + 1], int32 [nnz], float32 [nnz]; each row's entries in A's row order */
  tIndptr: tf.Tensor1D;
  tIndices: tf.Tensor1D;
  tValues: tf.Tensor1D;
}

export function csrTensor(
  nRows: number,
  nCols: number,
  indptr: Int32Array,
  indices: Int32Array,
  values: Float32Array,
): CsrTensor {
  if (indptr.length !== nRows + 1) throw new Error(`CSR indptr has ${indptr.length} entries, expected ${nRows + 1}`);
  if (indices.length !== values.length) throw new Error('CSR indices and values differ in length');
  const t = transposeCsr(nRows, nCols, indptr, indices, values);
  return {
    nRows,
    nCols,
    indptr: tf.tensor1d(indptr, 'int32'),
    indices: tf.tensor1d(indices, 'int32'),
    values: tf.tensor1d(values, 'float32'),
    tIndptr: tf.tensor1d(t.indptr, 'int32'),
    tIndices: tf.tensor1d(t.indices, 'int32'),
    tValues: tf.tensor1d(t.values, 'float32'),
  };
}

/** Aᵀ in CSR by a stable counting sort on the column: row j of Aᵀ lists A's entries (r, j) in increasing r. */
export function transposeCsr(nRows: number, nCols: number, indptr: Int32Array, indices: Int32Array, values: Float32Array): { indptr: Int32Array; indices: Int32Array; values: Float32Array } {
  const nnz = indptr[nRows];
  const tIndptr = new Int32Array(nCols + 1);
  for (let k = 0; k < nnz; k++) {
    const c = indices[k];
    if (!(c >= 0 && c < nCols)) throw new Error(`CSR column index ${c} at entry ${k} is outside [0, ${nCols})`);
    tIndptr[c + 1]++;
  }
  for (let c = 0; c < nCols; c++) tIndptr[c + 1] += tIndptr[c];
  const next = tIndptr.slice(0, nCols);
  const tIndices = new Int32Array(nnz);
  const tValues = new Float32Array(nnz);
  for (let r = 0; r < nRows; r++) {
    for (let k = indptr[r]; k < indptr[r + 1]; k++) {
      const at = next[indices[k]]++;
      tIndices[at] = r;
      tValues[at] = values[k];
    }
  }
  return { indptr: tIndptr, indices: tIndices, values: tValues };
}

/** A·x (or Aᵀ·x), differentiable in x. */
export function csrMatMul(a: CsrTensor, x: tf.Tensor2D, transpose = false): tf.Tensor2D {
  const expected = transpose ? a.nRows : a.nCols;
  if (x.shape[0] !== expected) throw new Error(`csrMatMul: x has ${x.shape[0]} rows, expected ${expected}`);
  const parts: CsrParts = [a.indptr, a.indices, a.values];
  const tParts: CsrParts = [a.tIndptr, a.tIndices, a.tValues];
  return transpose ? csrRun(tParts, parts, x) : csrRun(parts, tParts, x);
}

export function disposeCsr(a: CsrTensor): void {
  tf.dispose([a.indptr, a.indices, a.values, a.tIndptr, a.tIndices, a.tValues]);
}
