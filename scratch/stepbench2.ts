import { initEngine, tf } from '../trainer/engine.js';
import { LightGcn } from '../trainer/lightgcn.js';
import { normalizedAdjacency } from '../trainer/graph.js';
import { Rng } from '../trainer/rng.js';
await initEngine('wasm');
const U = 9308, I = 6710, per = 6;
const rng = new Rng(3);
const indptr = new Int32Array(U + 1); const idx: number[] = [];
for (let u = 0; u < U; u++) { const s = new Set<number>(); while (s.size < per) s.add(rng.int(I)); idx.push(...[...s].sort((a,b)=>a-b)); indptr[u+1] = idx.length; }
const g = normalizedAdjacency(U, I, { indptr, indices: Int32Array.from(idx) });
const m = new LightGcn({ nUsers: U, nItems: I, dim: 64, layers: 2 }, g, { seed: 1 });
const opt = tf.train.adam(1e-3);
const B = 2048;
for (let s = 0; s < 10; s++) {
  const t = { users: new Int32Array(B), pos: new Int32Array(B), neg: new Int32Array(B) };
  for (let k = 0; k < B; k++) { t.users[k] = rng.int(U); t.pos[k] = rng.int(I); t.neg[k] = rng.int(I); }
  const t0 = performance.now();
  const fl = tf.tidy(() => m.bprLoss(t, 1e-4).dataSync()[0]);
  const t1 = performance.now();
  const { value, grads } = tf.variableGrads(() => m.bprLoss(t, 1e-4), [m.ego]);
  grads[m.ego.name].dataSync();
  const t2 = performance.now();
  opt.applyGradients(grads as any);
  m.ego.dataSync();
  const t3 = performance.now();
  tf.dispose([value, grads[m.ego.name]]);
  console.log(`fwd ${(t1-t0).toFixed(1)} fwd+grad ${(t2-t1).toFixed(1)} adam ${(t3-t2).toFixed(1)}`);
}
