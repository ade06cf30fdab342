/**
 * `PromptmmRowDots`: z[r, k] = a[r, k, :] · b[r, :], the list logits of ListKD (each user's
 * vector against its K list items), with its gradient (da = dz ⊗ b, db = Σ_k dz·a). As a
 * batched matMul [R, K, d]·[R, d, 1] it cost wasm one tiny product per row, forward and
 * backward (about a fifth of a distillation step); here it is one pass (SIMD on wasm).
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, TensorInfo } from '@tensorflow/tfjs';
import { isWasm, output, simdFor, type KernelArgs } from './kernel-io.js';

export const ROW_DOTS = 'PromptmmRowDots';
const ROW_DOTS_GRAD_A = 'PromptmmRowDotsGradA';
const ROW_DOTS_GRAD_B = 'PromptmmRowDotsGradB';

function dims(a: TensorInfo): { rows: number; k: number; d: number } {
  const [rows, k, d] = a.shape;
  return { rows, k, d };
}

function rowDotsKernel(args: KernelArgs): TensorInfo {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { rows, k, d } = dims(a);
  const simd = simdFor(args.backend, d);
  if (simd && isWasm(args.backend)) {
    const out = args.backend.makeOutput([rows, k], 'float32');
    simd.rowDots(simd.ptr(out), simd.ptr(a), simd.ptr(b), rows, k, d);
    return out;
  }
  return output(args.backend, [rows, k], (out, read) => {
    const av = read(a);
    const bv = read(b);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < k; j++) {
        let s = 0;
        const ao = (r * k + j) * d;
        for (let c = 0; c < d; c++) s += av[ao + c] * bv[r * d + c];
        out[r * k + j] = s;
      }
    }
  });
}

/** One of the two gradients (`which`): da [R, K, d] or db [R, d]. */
function gradKernel(which: 'a' | 'b') {
  return (args: KernelArgs): TensorInfo => {
    const { dz, a, b } = args.inputs as { dz: TensorInfo; a: TensorInfo; b: TensorInfo };
    const { rows, k, d } = dims(a);
    const shape = which === 'a' ? [rows, k, d] : [rows, d];
    const simd = simdFor(args.backend, d);
    if (simd && isWasm(args.backend)) {
      const out = args.backend.makeOutput(shape, 'float32');
      const p = simd.ptr(out);
      simd.rowDotsGrad(which === 'a' ? p : 0, which === 'b' ? p : 0, simd.ptr(dz), simd.ptr(a), simd.ptr(b), rows, k, d);
      return out;
    }
    return output(args.backend, shape, (out, read) => {
      const zv = read(dz);
      const av = read(a);
      const bv = read(b);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < k; j++) {
          const w = zv[r * k + j];
          const ao = (r * k + j) * d;
          if (which === 'a') for (let c = 0; c < d; c++) out[ao + c] = w * bv[r * d + c];
          else for (let c = 0; c < d; c++) out[r * d + c] += w * av[ao + c];
        }
      }
    });
  };
}

export const rowDotsGradient: GradConfig = {
  kernelName: ROW_DOTS,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved;
    return {
      a: () => tf.engine().runKernel(ROW_DOTS_GRAD_A, { dz: dy as tf.Tensor, a, b }) as tf.Tensor,
      b: () => tf.engine().runKernel(ROW_DOTS_GRAD_B, { dz: dy as tf.Tensor, a, b }) as tf.Tensor,
    };
  },
};

/** Registers the op and its gradient kernels on the given backends. */
export function registerRowDots(backends: string[]): void {
  for (const backendName of backends) {
    tf.registerKernel({ kernelName: ROW_DOTS, backendName, kernelFunc: rowDotsKernel as tf.KernelFunc });
    tf.registerKernel({ kernelName: ROW_DOTS_GRAD_A, backendName, kernelFunc: gradKernel('a') as tf.KernelFunc });
    tf.registerKernel({ kernelName: ROW_DOTS_GRAD_B, backendName, kernelFunc: gradKernel('b') as tf.KernelFunc });
  }
  tf.registerGradient(rowDotsGradient);
}

/** z[r, k] = a[r, k, :] · b[r, :]: a [R, K, d], b [R, d] (float32), differentiable in both. */
export function rowDots(a: tf.Tensor3D, b: tf.Tensor2D): tf.Tensor2D {
  if (a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) throw new Error(`rowDots: a [${a.shape}] and b [${b.shape}] do not match`);
  return tf.engine().runKernel(ROW_DOTS, { a, b }) as tf.Tensor2D;
}
