/**
 * `PromptmmCsrMatMul`: sparse (CSR) × dense, optionally with the sparse matrix transposed,
 * with its gradient (dX = Aᵀ·dY), and the CSR tensors it takes. LightGCN's propagation is this op.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, TensorInfo } from '@tensorflow/tfjs';
import { isWasm, output, simdFor, type KernelArgs } from './kernel-io.js';

export const CSR_MATMUL = 'PromptmmCsrMatMul';

/**
 * out = A·x (or Aᵀ·x) with A in CSR (indptr, indices, values), x dense [*, cols].
 * The transposed product is a scatter over A's rows, so no transposed copy of A is kept.
 */
function csrMatMulInto(
  out: Float32Array,
  indptr: ArrayLike<number>,
  indices: ArrayLike<number>,
  values: ArrayLike<number>,
  x: ArrayLike<number>,
  cols: number,
  transpose: boolean,
): void {
  const rows = indptr.length - 1;
  if (!transpose) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let k = indptr[r], end = indptr[r + 1]; k < end; k++) {
        const w = values[k];
        const xi = indices[k] * cols;
        for (let c = 0; c < cols; c++) out[o + c] += w * x[xi + c];
      }
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const xi = r * cols;
      for (let k = indptr[r], end = indptr[r + 1]; k < end; k++) {
        const w = values[k];
        const o = indices[k] * cols;
        for (let c = 0; c < cols; c++) out[o + c] += w * x[xi + c];
      }
    }
  }
}

export function csrMatMulKernel(args: KernelArgs): TensorInfo {
  const { indptr, indices, values, x } = args.inputs as Record<'indptr' | 'indices' | 'values' | 'x', TensorInfo>;
  const transpose = Boolean(args.attrs?.transpose);
  const nCols = Number(args.attrs?.nCols); // columns of A
  const nRows = indptr.shape[0] - 1;
  const cols = x.shape[1];
  const outRows = transpose ? nCols : nRows;
  const simd = simdFor(args.backend, cols);
  if (simd && isWasm(args.backend)) {
    const out = args.backend.makeOutput([outRows, cols], 'float32');
    const p = [simd.ptr(out), simd.ptr(indptr), simd.ptr(indices), simd.ptr(values), simd.ptr(x)] as const;
    if (transpose) simd.csrMatMulT(...p, nRows, cols, outRows);
    else simd.csrMatMul(...p, nRows, cols);
    return out;
  }
  return output(args.backend, [outRows, cols], (out, read) => {
    csrMatMulInto(out, read(indptr), read(indices), read(values), read(x), cols, transpose);
  });
}

export const csrMatMulGradient: GradConfig = {
  kernelName: CSR_MATMUL,
  inputsToSave: ['indptr', 'indices', 'values'],
  gradFunc: (dy, saved, attrs) => {
    const [indptr, indices, values] = saved;
    const transpose = Boolean(attrs.transpose);
    const nCols = Number(attrs.nCols);
    // d(A·x)/dx = Aᵀ·dy; d(Aᵀ·x)/dx = A·dy. The graph structure itself gets no gradient.
    return {
      x: () => csrRun(indptr, indices, values, dy as tf.Tensor2D, !transpose, nCols),
      indptr: () => tf.zerosLike(indptr),
      indices: () => tf.zerosLike(indices),
      values: () => tf.zerosLike(values),
    };
  },
};

function csrRun(
  indptr: tf.Tensor,
  indices: tf.Tensor,
  values: tf.Tensor,
  x: tf.Tensor2D,
  transpose: boolean,
  nCols: number,
): tf.Tensor2D {
  return tf.engine().runKernel(CSR_MATMUL, { indptr, indices, values, x }, { transpose, nCols }) as tf.Tensor2D;
}

/** A sparse matrix in CSR held as tensors on the active backend. */
export interface CsrTensor {
  nRows: number;
  nCols: number;
  indptr: tf.Tensor1D; // int32 [nRows + 1]
  indices: tf.Tensor1D; // int32 [nnz]
  values: tf.Tensor1D; // float32 [nnz]
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
  return {
    nRows,
    nCols,
    indptr: tf.tensor1d(indptr, 'int32'),
    indices: tf.tensor1d(indices, 'int32'),
    values: tf.tensor1d(values, 'float32'),
  };
}

/** A·x (or Aᵀ·x), differentiable in x. */
export function csrMatMul(a: CsrTensor, x: tf.Tensor2D, transpose = false): tf.Tensor2D {
  const expected = transpose ? a.nRows : a.nCols;
  if (x.shape[0] !== expected) throw new Error(`csrMatMul: x has ${x.shape[0]} rows, expected ${expected}`);
  return csrRun(a.indptr, a.indices, a.values, x, transpose, a.nCols);
}

export function disposeCsr(a: CsrTensor): void {
  tf.dispose([a.indptr, a.indices, a.values]);
}
