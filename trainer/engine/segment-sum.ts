/**
 * `UnsortedSegmentSum` (the gradient of a row gather) for wasm, which has none, and cpu, whose
 * own is quadratic in practice: one linear pass of row scatter-adds (SIMD on wasm).
 */
import type { TensorInfo } from '@tensorflow/tfjs';
import { isWasm, output, simdFor, type KernelArgs } from './kernel-io.js';

export const SEGMENT_SUM = 'UnsortedSegmentSum';

/** out[segmentIds[r], :] += x[r, :] for every row r. */
function segmentSumInto(
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

export function segmentSumKernel(args: KernelArgs): TensorInfo {
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
