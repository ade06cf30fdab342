/**
 * Loads trainer/engine/wasm/kernels.wat (assembled to dist/trainer/engine/wasm/kernels.wasm at build)
 * against the tfjs wasm backend's own memory, so the SIMD loops work on tensors in
 * place. Returns null where that is not possible; callers then use the JS loops.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { KernelBackend, TensorInfo } from '@tensorflow/tfjs';

export interface WasmKernels {
  /** byte offset of a tensor's data in the shared heap */
  ptr(t: TensorInfo): number;
  csrMatMul(out: number, indptr: number, indices: number, values: number, x: number, rows: number, cols: number): void;
  csrMatMulT(out: number, indptr: number, indices: number, values: number, x: number, rows: number, cols: number, outRows: number): void;
  /** out = A·x by rows, then per mode bit: 1 out += add, 2 sum += out, 4 sum *= scale (kernels.wat) */
  spmm(out: number, indptr: number, indices: number, values: number, x: number, rows: number, cols: number, add: number, sum: number, scale: number, mode: number): void;
  scale(out: number, x: number, n: number, s: number): void;
  colSum(out: number, x: number, rows: number, cols: number): void;
  rowDots(out: number, a: number, b: number, rows: number, k: number, d: number): void;
  rowDotsGrad(da: number, db: number, dz: number, a: number, b: number, rows: number, k: number, d: number): void;
  segmentSum(out: number, x: number, ids: number, rows: number, cols: number, numSegments: number): void;
  gatherRows(out: number, x: number, ids: number, rows: number, cols: number): void;
  adam(x: number, g: number, m: number, v: number, ox: number, om: number, ov: number, n: number, lr: number, b1: number, b2: number, eps: number, c1: number, c2: number): void;
}

interface WasmBackendInternals extends KernelBackend {
  wasm: { asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory };
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
}

const cache = new WeakMap<object, WasmKernels | null>();

export function wasmKernelsFor(backend: KernelBackend): WasmKernels | null {
  if (cache.has(backend)) return cache.get(backend) ?? null;
  let k: WasmKernels | null = null;
  try {
    k = instantiate(backend as WasmBackendInternals);
  } catch {
    k = null; // e.g. the .wasm file was not built: the JS loops still work
  }
  cache.set(backend, k);
  return k;
}

function instantiate(b: WasmBackendInternals): WasmKernels | null {
  const memory = b.wasm?.asm?.memory ?? b.wasm?.wasmMemory;
  if (!(memory instanceof WebAssembly.Memory) || !b.dataIdMap) return null;
  const file = fileURLToPath(new URL('./wasm/kernels.wasm', import.meta.url));
  const mod = new WebAssembly.Module(readFileSync(file));
  const inst = new WebAssembly.Instance(mod, { env: { memory } });
  const e = inst.exports as Record<string, (...args: number[]) => void>;
  return {
    ptr: (t) => {
      const d = b.dataIdMap.get(t.dataId);
      if (!d) throw new Error('tensor data not found on the wasm backend');
      return d.memoryOffset;
    },
    csrMatMul: e.csr_matmul,
    csrMatMulT: e.csr_matmul_t,
    spmm: e.spmm,
    scale: e.scale,
    colSum: e.col_sum,
    rowDots: e.row_dots,
    rowDotsGrad: e.row_dots_grad,
    segmentSum: e.segment_sum,
    gatherRows: e.gather_rows,
    adam: e.adam,
  };
}
