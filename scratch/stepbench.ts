import { initEngine, tf } from '../trainer/engine.js';
import { LightGcn } from '../trainer/lightgcn.js';
import { normalizedAdjacency } from '../trainer/graph.js';
import { Rng } from '../trainer/rng.js';
const info = await initEngine((process.argv[2] as any) ?? 'auto');
console.log(info);
const U = 9308, I = 6710, per = 6;
const rng = new Rng(3);
const indptr = new Int32Array(U + 1); const idx: number[] = [];
for (let u = 0; u < U; u++) { const s = new Set<number>(); while (s.size < per) s.add(rng.int(I)); idx.push(...[...s].sort((a,b)=>a-b)); indptr[u+1] = idx.length; }
const csr = { indptr, indices: Int32Array.from(idx) };
const g = normalizedAdjacency(U, I, csr);
const m = new LightGcn({ nUsers: U, nItems: I, dim: 64, layers: 2 }, g, { seed: 1 });
const opt = tf.train.adam(1e-3);
const B = 2048;
for (let s = 0; s < 15; s++) {
  const t = { users: new Int32Array(B), pos: new Int32Array(B), neg: new Int32Array(B) };
  for (let k = 0; k < B; k++) { t.users[k] = rng.int(U); t.pos[k] = rng.int(I); t.neg[k] = rng.int(I); }
  const t0 = performance.now();
  const loss = opt.minimize(() => m.bprLoss(t, 1e-4), true, [m.ego]);
  const l = loss!.dataSync()[0]; loss!.dispose();
  const t1 = performance.now();
  const p0 = performance.now(); const f = m.propagate(); f.dataSync(); f.dispose(); const p1 = performance.now();
  console.log(`step ${(t1 - t0).toFixed(1)} ms  loss ${l.toFixed(4)}  propagate ${(p1-p0).toFixed(1)} ms  tensors ${tf.memory().numTensors}`);
}
