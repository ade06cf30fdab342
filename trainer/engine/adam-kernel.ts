/** `PromptmmAdam`: one fused Adam step over x, g, m, v (a single SIMD pass on wasm), the kernel behind adam.ts. */
import type { TensorInfo } from '@tensorflow/tfjs';
import { isWasm, output, simdFor, view, type KernelArgs } from './kernel-io.js';

export const ADAM = 'PromptmmAdam';

interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  step: number;
}

/** One fused Adam step: outputs [x', m', v'] (see trainer/engine/wasm/kernels.wat for the formula). */
export function adamKernel(args: KernelArgs): TensorInfo[] {
  const { x, g, m, v } = args.inputs as Record<'x' | 'g' | 'm' | 'v', TensorInfo>;
  const a = args.attrs as unknown as AdamAttrs;
  const n = x.shape.reduce((p, q) => p * q, 1);
  const c1 = 1 / (1 - a.beta1 ** a.step);
  const c2 = 1 / (1 - a.beta2 ** a.step);
  const backend = args.backend;
  const simd = simdFor(backend, 4);
  if (simd && isWasm(backend)) {
    const [ox, om, ov] = [0, 1, 2].map(() => backend.makeOutput(x.shape, 'float32'));
    simd.adam(simd.ptr(x), simd.ptr(g), simd.ptr(m), simd.ptr(v), simd.ptr(ox), simd.ptr(om), simd.ptr(ov), n, a.lr, a.beta1, a.beta2, a.epsilon, c1, c2);
    return [ox, om, ov];
  }
  const xs = view(backend, x);
  const gs = view(backend, g);
  const ms = view(backend, m);
  const vs = view(backend, v);
  const nx = new Float32Array(n);
  const nm = new Float32Array(n);
  const nv = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    nm[i] = a.beta1 * ms[i] + (1 - a.beta1) * gs[i];
    nv[i] = a.beta2 * vs[i] + (1 - a.beta2) * gs[i] * gs[i];
    nx[i] = xs[i] - (a.lr * c1 * nm[i]) / (a.epsilon + Math.sqrt(c2 * nv[i]));
  }
  return [nx, nm, nv].map((vals) => output(backend, x.shape, (out) => out.set(vals)));
}
