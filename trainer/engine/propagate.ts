/**
 * `PromptmmPropagateMean`: LightGCN's propagation mean(h0, Â·h0, …, Â^L·h0) as one op on wasm
 * (SIMD kernels), with its gradient. The same float32 values as the composition of CSR
 * products, adds and the final scaling that it replaces (each sum in the same order), in one
 * pass over the rows per layer, with no intermediate tensor on the gradient tape:
 *   forward: sum = h0; h_l = Â·h_{l−1}, sum += h_l (fused); the last layer also scales sum by 1/(L+1);
 *   gradient: g = dy/(L+1); r = g; L times r = Âᵀ·r + g (fused; Horner's rule of what autodiff sums).
 * Elsewhere (cpu, tfjs-node, rows not a multiple of 4 floats) propagateMean composes the ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, TensorInfo } from '@tensorflow/tfjs';
import { csrMatMul, noGraphGradients, type CsrTensor } from './csr-matmul.js';
import { isWasm, simdFor, type KernelArgs, type WasmLike } from './kernel-io.js';
import type { WasmKernels } from './wasm-kernels.js';

export const PROPAGATE_MEAN = 'PromptmmPropagateMean';
const PROPAGATE_MEAN_GRAD = 'PromptmmPropagateMeanGrad';

type Inputs = Record<'indptr' | 'indices' | 'values' | 'tIndptr' | 'tIndices' | 'tValues' | 'x', TensorInfo>;

/** Scratch tensors of the heap, freed after the kernel. */
function scratch(b: WasmLike, shape: number[], n: number): TensorInfo[] {
  return Array.from({ length: n }, () => b.makeOutput(shape, 'float32'));
}

function kernelsOf(args: KernelArgs, cols: number): { b: WasmLike; k: WasmKernels } {
  const k = simdFor(args.backend, cols);
  if (!k || !isWasm(args.backend)) throw new Error(`${PROPAGATE_MEAN} runs on wasm with the SIMD kernels only (rows of a multiple of 4 floats)`);
  return { b: args.backend, k };
}

function propagateMeanKernel(args: KernelArgs): TensorInfo {
  const { indptr, indices, values, x } = args.inputs as Inputs;
  const layers = Number(args.attrs?.layers);
  const [n, cols] = x.shape;
  const { b, k } = kernelsOf(args, cols);
  const sum = b.makeOutput([n, cols], 'float32');
  const bufs = scratch(b, [n, cols], Math.min(layers, 2));
  (b.typedArrayFromHeap(sum) as Float32Array).set(b.typedArrayFromHeap(x) as Float32Array); // after every allocation
  const scale = 1 / (layers + 1);
  let prev = x;
  for (let l = 1; l <= layers; l++) {
    const dst = bufs[(l - 1) % 2];
    k.spmm(k.ptr(dst), k.ptr(indptr), k.ptr(indices), k.ptr(values), k.ptr(prev), n, cols, 0, k.ptr(sum), scale, l === layers ? 2 | 4 : 2);
    prev = dst;
  }
  if (layers === 0) k.scale(k.ptr(sum), k.ptr(sum), n * cols, scale);
  for (const t of bufs) b.disposeData(t.dataId);
  return sum;
}

/** dx = Pᵀ·dy for P = mean of Â^0..Â^L, given Âᵀ as (indptr, indices, values): Horner's rule. */
function propagateMeanGradKernel(args: KernelArgs): TensorInfo {
  const { indptr, indices, values, x: dy } = args.inputs as Inputs;
  const layers = Number(args.attrs?.layers);
  const [n, cols] = dy.shape;
  const { b, k } = kernelsOf(args, cols);
  const out = b.makeOutput([n, cols], 'float32');
  const [g, ...bufs] = scratch(b, [n, cols], 1 + Math.min(Math.max(layers - 1, 0), 2));
  k.scale(k.ptr(g), k.ptr(dy), n * cols, 1 / (layers + 1));
  if (layers === 0) k.scale(k.ptr(out), k.ptr(g), n * cols, 1);
  let r = g;
  for (let l = 1; l <= layers; l++) {
    const dst = l === layers ? out : bufs[(l - 1) % 2];
    k.spmm(k.ptr(dst), k.ptr(indptr), k.ptr(indices), k.ptr(values), k.ptr(r), n, cols, k.ptr(g), 0, 1, 1);
    r = dst;
  }
  for (const t of [g, ...bufs]) b.disposeData(t.dataId);
  return out;
}

export const propagateMeanGradient: GradConfig = {
  kernelName: PROPAGATE_MEAN,
  inputsToSave: ['indptr', 'indices', 'values', 'tIndptr', 'tIndices', 'tValues'],
  gradFunc: (dy, saved, attrs) => {
    const [, , , tIndptr, tIndices, tValues] = saved;
    return {
      x: () => tf.engine().runKernel(PROPAGATE_MEAN_GRAD, { indptr: tIndptr, indices: tIndices, values: tValues, x: dy as tf.Tensor }, { layers: Number(attrs.layers) }) as tf.Tensor,
      ...noGraphGradients(saved),
    };
  },
};

/** Registers the op and its gradient on wasm; idempotent through register-kernels.ts. */
export function registerPropagate(): void {
  tf.registerKernel({ kernelName: PROPAGATE_MEAN, backendName: 'wasm', kernelFunc: propagateMeanKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: PROPAGATE_MEAN_GRAD, backendName: 'wasm', kernelFunc: propagateMeanGradKernel as tf.KernelFunc });
  tf.registerGradient(propagateMeanGradient);
}

/**
 * LightGCN propagation: the mean of [h0, Â·h0, Â²·h0, …, Â^layers·h0], differentiable in h0.
 * The student's final embeddings, and the teacher's ID and modality parts, are this over the same graph.
 */
export function propagateMean(adj: CsrTensor, h0: tf.Tensor2D, layers: number): tf.Tensor2D {
  if (adj.nRows !== adj.nCols || h0.shape[0] !== adj.nCols) throw new Error(`propagateMean: a square graph and h0 of ${adj.nCols} rows expected (got ${adj.nRows}×${adj.nCols}, h0 ${h0.shape[0]} rows)`);
  if (h0.dtype === 'float32' && simdFor(tf.backend(), h0.shape[1])) {
    const { indptr, indices, values, tIndptr, tIndices, tValues } = adj;
    return tf.engine().runKernel(PROPAGATE_MEAN, { indptr, indices, values, tIndptr, tIndices, tValues, x: h0 }, { layers }) as tf.Tensor2D;
  }
  return propagateMeanComposed(adj, h0, layers);
}

/** The same mean composed of csrMatMul and adds (backends without the fused op; the fused op's reference in tests). */
export function propagateMeanComposed(adj: CsrTensor, h0: tf.Tensor2D, layers: number): tf.Tensor2D {
  let h = h0;
  let sum = h0;
  for (let l = 0; l < layers; l++) {
    h = csrMatMul(adj, h);
    sum = tf.add(sum, h);
  }
  return tf.mul(sum, 1 / (layers + 1));
}
