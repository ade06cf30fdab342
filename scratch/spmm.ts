import { csrMatMulInto } from '../trainer/kernels.js';
import { normalizedAdjacency } from '../trainer/graph.js';
import { Rng } from '../trainer/rng.js';
const U = 9308, I = 6710, per = 6, d = 64;
const rng = new Rng(3);
const indptr = new Int32Array(U + 1); const idx: number[] = [];
for (let u = 0; u < U; u++) { const s = new Set<number>(); while (s.size < per) s.add(rng.int(I)); idx.push(...[...s].sort((a,b)=>a-b)); indptr[u+1] = idx.length; }
const g = normalizedAdjacency(U, I, { indptr, indices: Int32Array.from(idx) });
const N = U + I; const x = new Float32Array(N * d).map(() => rng.normal()); const out = new Float32Array(N * d);
for (let r = 0; r < 10; r++) { out.fill(0); const t = performance.now(); csrMatMulInto(out, g.indptr, g.indices, g.values, x, d, r % 2 === 1); console.log(r % 2 ? 'T' : 'N', (performance.now() - t).toFixed(1), 'ms nnz', g.indices.length); }
