/**
 * Kernels that tfjs lacks, registered for the backends that lack them.
 *
 * - `UnsortedSegmentSum` (the gradient of `gather`): absent on `wasm`, quadratic in
 *   practice on `cpu`. Ours is one linear pass of row scatter-adds.
 * - `PromptmmGatherRows`: rows of a matrix by index, whose gradient is the segment sum
 *   directly (tf.gather on wasm is ~10× slower here and its gradient adds transposes).
 * - `PromptmmCsrMatMul`: sparse (CSR) × dense, optionally with the sparse matrix
 *   transposed, with its gradient (dX = Aᵀ·dY). LightGCN's propagation is this op.
 *
 * Both read and write the backend's own memory (the wasm heap, the cpu backend's
 * arrays) so no tensor crosses into JavaScript and back as a copy.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { wasmKernelsFor } from './wasm-kernels.js';
import { fromEnv } from '../../core/defaults.js';

export const CSR_MATMUL = 'PromptmmCsrMatMul';
export const GATHER_ROWS = 'PromptmmGatherRows';
export const ADAM = 'PromptmmAdam';
const SEGMENT_SUM = 'UnsortedSegmentSum';

type TypedArray = Float32Array | Int32Array | Uint8Array;

interface WasmLike extends KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): TypedArray;
}
interface CpuLike extends KernelBackend {
  data: { get(id: object): { values: TypedArray } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: TypedArray): TensorInfo;
}

function isWasm(b: KernelBackend): b is WasmLike {
  return typeof (b as Partial<WasmLike>).typedArrayFromHeap === 'function';
}

/** Read access to a tensor's values without a copy where the backend allows it. */
function view(backend: KernelBackend, t: TensorInfo): TypedArray {
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
function output(
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

/** out[segmentIds[r], :] += x[r, :] for every row r. */
export function segmentSumInto(
  out: Float32Array,
  x: ArrayLike<number>,
  segmentIds: ArrayLike<number>,
  cols: number,
  numSegments: number,
): void {
  const rows = segmentIds.length;
  for (let r = 0; r < rows; r++) {
    const s = segmentIds[r];
    if (s < 0 || s >= numSegments) continue; // tf semantics: out-of-range ids are dropped
    const o = s * cols;
    const xi = r * cols;
    for (let c = 0; c < cols; c++) out[o + c] += x[xi + c];
  }
}

/**
 * out = A·x (or Aᵀ·x) with A in CSR (indptr, indices, values), x dense [*, cols].
 * The transposed product is a scatter over A's rows, so no transposed copy of A is kept.
 */
export function csrMatMulInto(
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

function segmentSumKernel(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const numSegments = Number(args.attrs?.numSegments);
  const cols = x.shape.slice(1).reduce((a, b) => a * b, 1);
  if (x.dtype !== 'float32') throw new Error(`${SEGMENT_SUM}: only float32 is supported, got ${x.dtype}`);
  const rows = segmentIds.shape.reduce((a, b) => a * b, 1);
  const simd = simdFor(args.backend, cols);
  if (simd && isWasm(args.backend)) {
    const out = args.backend.makeOutput([numSegments, ...x.shape.slice(1)], 'float32');
    simd.segmentSum(simd.ptr(out), simd.ptr(x), simd.ptr(segmentIds), rows, cols, numSegments);
    return out;
  }
  return output(args.backend, [numSegments, ...x.shape.slice(1)], (out, read) => {
    segmentSumInto(out, read(x), read(segmentIds), cols, numSegments);
  });
}

function csrMatMulKernel(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
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

function gatherRowsKernel(args: { inputs: NamedTensorInfoMap; backend: KernelBackend }): TensorInfo {
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

interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  step: number;
}

/** One fused Adam step: outputs [x', m', v'] (see trainer/wasm/kernels.wat for the formula). */
function adamKernel(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo[] {
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

/** The SIMD kernels apply on wasm for row widths that are multiples of 4 (and can be turned off to test the JS path). */
function simdFor(backend: KernelBackend, cols: number) {
  if (cols % 4 !== 0 || !isWasm(backend) || fromEnv('noSimdKernels')) return null;
  return wasmKernelsFor(backend);
}

/**
 * The wasm backend's BatchMatMul is ~10× slower with a transpose flag than on operands
 * transposed beforehand (Xᵀ·dY, 6710×128 by 6710×64: 70 ms against 10 ms here), and the
 * gradients of every matMul use those flags. This wraps the kernel so that transposed
 * operands are materialised first.
 */
function patchWasmMatMul(): void {
  const original = tf.getKernel('BatchMatMul', 'wasm');
  const transposeKernel = tf.getKernel('Transpose', 'wasm');
  if (!original || !transposeKernel) return;
  const wrapped = (args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    if (!attrs.transposeA && !attrs.transposeB) return original.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
    const temps: TensorInfo[] = [];
    const swapLast = (x: TensorInfo): TensorInfo => {
      const r = x.shape.length;
      const perm = [...Array(r).keys()];
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      const t = transposeKernel.kernelFunc({ inputs: { x }, attrs: { perm }, backend: args.backend }) as TensorInfo;
      temps.push(t);
      return t;
    };
    const a2 = attrs.transposeA ? swapLast(a) : a;
    const b2 = attrs.transposeB ? swapLast(b) : b;
    try {
      return original.kernelFunc({ ...args, inputs: { a: a2, b: b2 }, attrs: { ...attrs, transposeA: false, transposeB: false } } as Parameters<tf.KernelFunc>[0]);
    } finally {
      for (const t of temps) args.backend.disposeData(t.dataId);
    }
  };
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: wrapped as tf.KernelFunc, setupFunc: original.setupFunc });
}

/**
 * The wasm backend's Slice copies the whole input out of the heap (readSync) before
 * taking its part, even for a contiguous block of rows; splitting a batch's rows paid a
 * full copy per part. Contiguous slices are copied straight from the heap here; any other
 * slice goes to the original kernel.
 */
function patchWasmSlice(): void {
  const slice = tf.getKernel('Slice', 'wasm');
  const splitV = tf.getKernel('SplitV', 'wasm');
  if (!slice || !splitV) return;
  type Args = { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap };
  const sliceWrapped = (args: Args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const attrs = (args.attrs ?? {}) as { begin: number | number[]; size: number | number[] };
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
    return contiguousSlice(args.backend, x, begin, size) ?? slice.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
  };
  const splitWrapped = (args: Args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const attrs = (args.attrs ?? {}) as { numOrSizeSplits: number | number[]; axis: number | number[] };
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    const parts: TensorInfo[] = [];
    for (const s of sizes) {
      const size = [...x.shape];
      size[axis] = s;
      const part = contiguousSlice(args.backend, x, [...begin], size);
      if (!part) {
        for (const p of parts) args.backend.disposeData(p.dataId);
        return splitV.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
      }
      parts.push(part);
      begin[axis] += s;
    }
    return parts;
  };
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({ kernelName: 'Slice', backendName: 'wasm', kernelFunc: sliceWrapped as tf.KernelFunc, setupFunc: slice.setupFunc });
  tf.unregisterKernel('SplitV', 'wasm');
  tf.registerKernel({ kernelName: 'SplitV', backendName: 'wasm', kernelFunc: splitWrapped as tf.KernelFunc, setupFunc: splitV.setupFunc });
}

/**
 * tfjs clones tensors through the Identity kernel (gradients of add, reshape, variable
 * reads…); wasm's copies the data every time (333 copies, up to 4 MB each, in one
 * distillation step). Tensors are immutable, so like the cpu backend the clone shares the
 * data and takes a reference.
 */
function patchWasmIdentity(): void {
  const original = tf.getKernel('Identity', 'wasm');
  if (!original) return;
  const shared = (args: { inputs: NamedTensorInfoMap; backend: KernelBackend }) => {
    const { x } = args.inputs as { x: TensorInfo };
    const b = args.backend as KernelBackend & { incRef?: (id: object) => void };
    if (x.dtype === 'string' || typeof b.incRef !== 'function') return original.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
    b.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: shared as tf.KernelFunc, setupFunc: original.setupFunc });
}

/** A contiguous block of x copied heap to heap; null when the slice is not contiguous. */
function contiguousSlice(backend: KernelBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo | null {
  if (x.dtype === 'string' || !isWasm(backend) || !tf.slice_util.isSliceContinous(x.shape, begin, size)) return null;
  const offset = tf.slice_util.computeFlatOffset(begin, tf.util.computeStrides(x.shape));
  const n = size.reduce((a, b) => a * b, 1);
  const out = backend.makeOutput(size, x.dtype);
  const src = backend.typedArrayFromHeap(x); // after makeOutput: a heap growth detaches older views
  (backend.typedArrayFromHeap(out) as Float32Array).set(src.subarray(offset, offset + n) as Float32Array);
  return out;
}

let registered = false;

/** Registers the kernels and gradients; idempotent. Call after importing a backend package. */
export function registerProjectKernels(): void {
  if (registered) return;
  registered = true;
  patchWasmMatMul();
  patchWasmSlice();
  patchWasmIdentity();
  for (const backendName of ['wasm', 'cpu']) {
    // The cpu backend ships a slow UnsortedSegmentSum; replace it (wasm has none).
    if (tf.getKernel(SEGMENT_SUM, backendName)) tf.unregisterKernel(SEGMENT_SUM, backendName);
    tf.registerKernel({ kernelName: SEGMENT_SUM, backendName, kernelFunc: segmentSumKernel as tf.KernelFunc });
  }
  for (const backendName of ['wasm', 'cpu', 'tensorflow']) {
    tf.registerKernel({ kernelName: CSR_MATMUL, backendName, kernelFunc: csrMatMulKernel as tf.KernelFunc });
    tf.registerKernel({ kernelName: GATHER_ROWS, backendName, kernelFunc: gatherRowsKernel as tf.KernelFunc });
    tf.registerKernel({ kernelName: ADAM, backendName, kernelFunc: adamKernel as unknown as tf.KernelFunc });
  }
  tf.registerGradient({
    kernelName: GATHER_ROWS,
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy, saved) => {
      const [x, indices] = saved;
      return {
        x: () => tf.unsortedSegmentSum(dy as tf.Tensor, indices as tf.Tensor1D, x.shape[0]),
        indices: () => tf.zerosLike(indices),
      };
    },
  });
  tf.registerGradient({
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
  });
}

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

/** x[indices, :], differentiable in x; its gradient is one segment sum. */
export function gatherRows(x: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel(GATHER_ROWS, { x, indices }) as tf.Tensor2D;
}

export function disposeCsr(a: CsrTensor): void {
  tf.dispose([a.indptr, a.indices, a.values]);
}
