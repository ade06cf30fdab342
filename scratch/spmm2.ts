import { normalizedAdjacency } from '../trainer/graph.js';
import { Rng } from '../trainer/rng.js';
function spmm64(out: Float32Array, indptr: Int32Array, indices: Int32Array, values: Float32Array, x: Float32Array, cols: number): void {
  const rows = indptr.length - 1;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let k = indptr[r], end = indptr[r + 1]; k < end; k++) {
      const w = values[k];
      const xi = indices[k] * cols;
      for (let c = 0; c < cols; c += 8) {
        out[o + c] += w * x[xi + c];
        out[o + c + 1] += w * x[xi + c + 1];
        out[o + c + 2] += w * x[xi + c + 2];
        out[o + c + 3] += w * x[xi + c + 3];
        out[o + c + 4] += w * x[xi + c + 4];
        out[o + c + 5] += w * x[xi + c + 5];
        out[o + c + 6] += w * x[xi + c + 6];
        out[o + c + 7] += w * x[xi + c + 7];
      }
    }
  }
}
function spmmAcc(out: Float32Array, indptr: Int32Array, indices: Int32Array, values: Float32Array, x: Float32Array, cols: number, acc: Float64Array): void {
  const rows = indptr.length - 1;
  for (let r = 0; r < rows; r++) {
    acc.fill(0);
    for (let k = indptr[r], end = indptr[r + 1]; k < end; k++) {
      const w = values[k];
      const xi = indices[k] * cols;
      for (let c = 0; c < cols; c++) acc[c] += w * x[xi + c];
    }
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[o + c] = acc[c];
  }
}
const U = 9308, I = 6710, per = 6, d = 64;
const rng = new Rng(3);
const indptr = new Int32Array(U + 1); const idx: number[] = [];
for (let u = 0; u < U; u++) { const s = new Set<number>(); while (s.size < per) s.add(rng.int(I)); idx.push(...[...s].sort((a,b)=>a-b)); indptr[u+1] = idx.length; }
const g = normalizedAdjacency(U, I, { indptr, indices: Int32Array.from(idx) });
const N = U + I; const x = new Float32Array(N * d).map(() => rng.normal()); const out = new Float32Array(N * d);
const acc = new Float64Array(d);
for (let r = 0; r < 6; r++) { out.fill(0); let t = performance.now(); spmm64(out, g.indptr, g.indices, g.values, x, d); const a = performance.now() - t; t = performance.now(); spmmAcc(out, g.indptr, g.indices, g.values, x, d, acc); console.log('unroll', a.toFixed(1), 'acc', (performance.now() - t).toFixed(1)); }
