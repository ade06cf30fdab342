/**
 * How the project's kernels read inputs and write outputs in the backend's own memory (the
 * wasm heap, the cpu backend's arrays), so no tensor crosses into JavaScript and back as a copy.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { wasmKernelsFor } from './wasm-kernels.js';
import { fromEnv } from '../../core/defaults.js';

export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** What tfjs hands a kernel function. */
export interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: KernelBackend;
  attrs?: NamedAttrMap;
}

export interface WasmLike extends KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): TypedArray;
}
interface CpuLike extends KernelBackend {
  data: { get(id: object): { values: TypedArray } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: TypedArray): TensorInfo;
}

export function isWasm(b: KernelBackend): b is WasmLike {
  return typeof (b as Partial<WasmLike>).typedArrayFromHeap === 'function';
}

/** Read access to a tensor's values without a copy where the backend allows it. */
export function view(backend: KernelBackend, t: TensorInfo): TypedArray {
  if (isWasm(backend)) return backend.typedArrayFromHeap(t);
  const cpu = backend as CpuLike;
  const entry = cpu.data?.get?.(t.dataId);
  if (entry && entry.values) return entry.values;
  return backend.readSync(t.dataId) as TypedArray;
}

/**
 * Allocates a float32 output of `shape`, lets `fill` write it, and returns it.
 * On wasm the inputs' views are taken inside `fill`, after allocation, because a
 * heap growth detaches views taken earlier.
 */
export function output(
  backend: KernelBackend,
  shape: number[],
  fill: (out: Float32Array, read: (t: TensorInfo) => TypedArray) => void,
): TensorInfo {
  const size = shape.reduce((a, b) => a * b, 1);
  if (isWasm(backend)) {
    const out = backend.makeOutput(shape, 'float32');
    const values = backend.typedArrayFromHeap(out) as Float32Array;
    values.fill(0);
    fill(values, (t) => backend.typedArrayFromHeap(t));
    return out;
  }
  const values = new Float32Array(size);
  fill(values, (t) => view(backend, t));
  const b = backend as CpuLike;
  if (typeof b.makeTensorInfo === 'function') return b.makeTensorInfo(shape, 'float32', values);
  throw new Error(`backend ${tf.getBackend()} cannot create outputs for custom kernels`);
}

/** The SIMD kernels apply on wasm for row widths that are multiples of 4 (and can be turned off to test the JS path). */
export function simdFor(backend: KernelBackend, cols: number) {
  if (cols % 4 !== 0 || !isWasm(backend) || fromEnv('noSimdKernels')) return null;
  return wasmKernelsFor(backend);
}
