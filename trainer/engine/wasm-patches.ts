/**
 * Wraps six of the tfjs wasm backend's own kernels (BatchMatMul with transpose flags, Slice,
 * SplitV, Identity, Cast, Sum over a matrix's rows), which copied or transposed far more than a training step needs.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { isWasm, simdFor } from './kernel-io.js';

/** Wraps BatchMatMul, Slice, SplitV, Identity, Cast and Sum on wasm (where that backend is registered). */
export function patchWasmKernels(): void {
  patchWasmMatMul();
  patchWasmSlice();
  patchWasmIdentity();
  patchWasmCast();
  patchWasmColumnSum();
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
  shareDataWhen('Identity', () => true);
}

/**
 * The gradients of Multiply and RealDiv cast their float32 operands to float32 (ten casts of up to
 * 4 MB in one teacher step); wasm's Cast copies even then. A cast to the tensor's own dtype
 * shares the data instead, as the cpu backend does; other casts go to the original kernel.
 */
function patchWasmCast(): void {
  shareDataWhen('Cast', (x, attrs) => attrs?.dtype === x.dtype);
}

/**
 * Replaces wasm's `kernel` by one that answers with its input's data (a reference, no copy)
 * when `shares` says the result is the input itself; otherwise, for strings, or on a backend
 * without reference counts, the original kernel runs.
 */
function shareDataWhen(kernel: string, shares: (x: TensorInfo, attrs: NamedAttrMap | undefined) => boolean): void {
  const original = tf.getKernel(kernel, 'wasm');
  if (!original) return;
  const shared = (args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }) => {
    const { x } = args.inputs as { x: TensorInfo };
    const b = args.backend as KernelBackend & { incRef?: (id: object) => void };
    if (!shares(x, args.attrs) || x.dtype === 'string' || typeof b.incRef !== 'function') return original.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
    b.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  tf.unregisterKernel(kernel, 'wasm');
  tf.registerKernel({ kernelName: kernel, backendName: 'wasm', kernelFunc: shared as tf.KernelFunc, setupFunc: original.setupFunc });
}

/**
 * wasm's Sum over axis 0 of a matrix (every bias gradient: [6710, 64] → [64] in the teacher)
 * transposes the whole matrix first; here it is one pass adding the rows in order (SIMD). Any
 * other sum goes to the original kernel.
 */
function patchWasmColumnSum(): void {
  const original = tf.getKernel('Sum', 'wasm');
  if (!original) return;
  const sum = (args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }) => {
    const { x } = args.inputs as { x: TensorInfo };
    const attrs = (args.attrs ?? {}) as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = rank === 2 ? tf.util.parseAxisParam(attrs.axis, x.shape) : [];
    const simd = x.dtype === 'float32' && axes.length === 1 && axes[0] === 0 ? simdFor(args.backend, x.shape[1]) : null;
    if (!simd || !isWasm(args.backend)) return original.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
    const [rows, cols] = x.shape;
    const out = args.backend.makeOutput(attrs.keepDims ? [1, cols] : [cols], 'float32');
    simd.colSum(simd.ptr(out), simd.ptr(x), rows, cols);
    return out;
  };
  tf.unregisterKernel('Sum', 'wasm');
  tf.registerKernel({ kernelName: 'Sum', backendName: 'wasm', kernelFunc: sum as tf.KernelFunc, setupFunc: original.setupFunc });
}

/**
 * A contiguous block of x copied heap to heap, or a block of columns of a matrix copied row by
 * row (ListKD slices its logits' first column and the rest); null for any other slice.
 */
function contiguousSlice(backend: KernelBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo | null {
  if (x.dtype === 'string' || !isWasm(backend)) return null;
  const contiguous = tf.slice_util.isSliceContinous(x.shape, begin, size);
  if (!contiguous && x.shape.length !== 2) return null;
  const out = backend.makeOutput(size, x.dtype);
  const src = backend.typedArrayFromHeap(x); // after makeOutput: a heap growth detaches older views
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  if (contiguous) {
    const offset = tf.slice_util.computeFlatOffset(begin, tf.util.computeStrides(x.shape));
    const n = size.reduce((a, b) => a * b, 1);
    dst.set(src.subarray(offset, offset + n) as Float32Array);
    return out;
  }
  const cols = x.shape[1];
  const [r0, c0] = begin;
  const [rows, width] = size;
  for (let r = 0; r < rows; r++) {
    const from = (r0 + r) * cols + c0;
    dst.set(src.subarray(from, from + width) as Float32Array, r * width);
  }
  return out;
}
