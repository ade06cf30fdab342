/**
 * `PromptmmGatherRows`: rows of a matrix by index, whose gradient is one segment sum
 * (tf.gather on wasm is ~10× slower here and its gradient adds transposes).
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, TensorInfo } from '@tensorflow/tfjs';
import { isWasm, output, simdFor, view, type KernelArgs } from './kernel-io.js';

export const GATHER_ROWS = 'PromptmmGatherRows';

export function gatherRowsKernel(args: KernelArgs): TensorInfo {
  const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
  const nRows = x.shape[0];
  const cols = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const n = indices.shape.reduce((a, b) => a * b, 1);
  const ids = view(args.backend, indices);
  for (let r = 0; r < n; r++) {
    if (!(ids[r] >= 0 && ids[r] < nRows)) throw new Error(`${GATHER_ROWS}: index ${ids[r]} at position ${r} is outside [0, ${nRows})`);
  }
  const simd = simdFor(args.backend, cols);
  if (simd && isWasm(args.backend)) {
    const out = args.backend.makeOutput([n, ...x.shape.slice(1)], 'float32');
    simd.gatherRows(simd.ptr(out), simd.ptr(x), simd.ptr(indices), n, cols);
    return out;
  }
  return output(args.backend, [n, ...x.shape.slice(1)], (out, read) => {
    const xv = read(x);
    const iv = read(indices);
    for (let r = 0; r < n; r++) {
      const src = iv[r] * cols;
      for (let c = 0; c < cols; c++) out[r * cols + c] = xv[src + c];
    }
  });
}

export const gatherRowsGradient: GradConfig = {
  kernelName: GATHER_ROWS,
  inputsToSave: ['x', 'indices'],
  gradFunc: (dy, saved) => {
    const [x, indices] = saved;
    return {
      x: () => tf.unsortedSegmentSum(dy as tf.Tensor, indices as tf.Tensor1D, x.shape[0]),
      indices: () => tf.zerosLike(indices),
    };
  },
};

/** x[indices, :], differentiable in x; its gradient is one segment sum. */
export function gatherRows(x: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel(GATHER_ROWS, { x, indices }) as tf.Tensor2D;
}
