/**
 * bench:profile — per-kernel time of one training step of each model on a dataset
 * (tf.profile), to see where a step's time goes.
 *   npm run bench:profile -- [--data ../shared/data/tiktok] [--model teacher|student|kd|sasrec]
 * (sasrec: one batch of next-item windows, e.g. --data ../shared/data/scientific --batch 256)
 */
import { parseArgs } from 'node:util';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { loadDataset } from '../data/dataset.js';
import { normalizedAdjacency } from '../data/graph.js';
import { LightGcn } from '../trainer/models/lightgcn.js';
import { Teacher } from '../trainer/models/teacher.js';
import { TEACHER_DEFAULTS } from '../trainer/stages/teacher.js';
import { KD_DEFAULTS, kdTrainable } from '../trainer/stages/kd.js';
import { STUDENT_DEFAULTS } from '../trainer/stages/student.js';
import { BprSampler } from '../data/sampler.js';
import { Rng } from '../core/rng.js';
import { FusedAdam } from '../trainer/engine/adam.js';
import { SasRec } from '../trainer/models/sasrec.js';
import { SEQUENTIAL_DEFAULTS, sasrecShape } from '../trainer/stages/sequential.js';
import { SequenceWindows, userSequences } from '../data/sequences.js';

const { values: a } = parseArgs({ options: { data: { type: 'string', default: '../shared/data/tiktok' }, model: { type: 'string', default: 'teacher' }, batch: { type: 'string', default: '2048' } } });
await initEngine('auto');
const data = loadDataset(a.data!);
const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
const sampler = new BprSampler(data.train.users, data.train.items, data.trainByUser, data.nItems, new Rng(1));
sampler.shuffle();
const opt = new FusedAdam(1e-3);
let step: () => tf.Scalar;
let vars: tf.Variable[];
if (a.model === 'sasrec') {
  const cfg = SEQUENTIAL_DEFAULTS;
  const m = new SasRec(sasrecShape(cfg, data.nItems), { seed: 1 });
  const windows = new SequenceWindows(userSequences(data, 0), cfg.maxLen, data.nItems, new Rng(1));
  windows.shuffle();
  const rng = new Rng(2);
  vars = m.variables;
  step = () => m.loss(windows.batch(0, Number(a.batch)), { dropout: cfg.seqDropout, loss: cfg.seqLoss, negatives: cfg.seqNegatives }, rng);
} else if (a.model === 'student') {
  const m = new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: 64, layers: 2 }, graph, { seed: 1 });
  vars = [m.ego];
  step = () => m.bprLoss(sampler.batch(0, Number(a.batch)), 1e-4);
} else if (a.model === 'kd') {
  const t = new Teacher(data, graph, TEACHER_DEFAULTS, { seed: 1 });
  const m = new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: 64, layers: 2 }, graph, { seed: 1 });
  const kd = kdTrainable(m, t, data, { ...STUDENT_DEFAULTS, kd: KD_DEFAULTS });
  vars = kd.variables;
  step = () => kd.loss(sampler.batch(0, Number(a.batch)));
} else {
  const t = new Teacher(data, graph, TEACHER_DEFAULTS, { seed: 1 });
  vars = t.variables;
  step = () => t.loss(sampler.batch(0, Number(a.batch)), 1e-4, TEACHER_DEFAULTS.modalWeight).total;
}
for (let i = 0; i < 3; i++) opt.minimize(step, vars).dispose(); // warm-up
const t0 = performance.now();
const prof = await tf.profile(() => {
  opt.minimize(step, vars).dispose();
});
const wall = performance.now() - t0;
const byKernel = new Map<string, { ms: number; n: number }>();
for (const k of prof.kernels) {
  const e = byKernel.get(k.name) ?? { ms: 0, n: 0 };
  e.ms += Number(k.kernelTimeMs) || 0;
  e.n++;
  byKernel.set(k.name, e);
}
console.log(`${a.model}: one step ${wall.toFixed(1)} ms wall (profiling adds overhead)`);
for (const [name, e] of [...byKernel].sort((x, y) => y[1].ms - x[1].ms).slice(0, 20)) console.log(`${name.padEnd(24)} ${e.ms.toFixed(1).padStart(8)} ms  ×${e.n}`);
