/**
 * bench:profile — per-kernel time of one training step of each model on a dataset
 * (tf.profile), to see where a step's time goes, then the mean of `--steps` unprofiled steps
 * (wall and this process's CPU time, which a busy machine inflates less) and what that makes
 * an epoch (steps per epoch = training examples / batch), and one all-ranking evaluation of
 * each split on the model's embeddings (not for sasrec, whose users are encoded from sequences).
 * The kernel table is the mean over `--profile-steps` profiled steps, with each kernel's share of
 * the kernel time; `--by-shape` splits it by input shapes too.
 *   npm run bench:profile -- [--data ../shared/data/tiktok] [--model teacher|student|kd|sasrec] [--steps 20] [--profile-steps 3] [--by-shape]
 * (sasrec: one batch of next-item windows, e.g. --data ../shared/data/scientific --batch 256)
 */
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
import { evaluateEmbeddings } from '../trainer/eval.js';
import { SasRec } from '../trainer/models/sasrec.js';
import { SEQUENTIAL_DEFAULTS, sasrecShape } from '../trainer/stages/sequential.js';
import { SequenceWindows, userSequences } from '../data/sequences.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, { options: { data: { type: 'string', default: '../shared/data/tiktok' }, model: { type: 'string', default: 'teacher' }, batch: { type: 'string', default: '2048' }, steps: { type: 'string', default: '20' }, 'profile-steps': { type: 'string', default: '3' }, 'by-shape': { type: 'boolean', default: false } } });
await initEngine('auto');
const data = loadDataset(a.data!);
const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
const sampler = new BprSampler(data.train.users, data.train.items, data.trainByUser, data.nItems, new Rng(1));
sampler.shuffle();
const opt = new FusedAdam(1e-3);
let step: () => tf.Scalar;
let vars: tf.Variable[];
let embeddings: (() => Float32Array) | null = null;
let perEpoch = Math.ceil(data.train.users.length / Number(a.batch));
if (a.model === 'sasrec') {
  const cfg = SEQUENTIAL_DEFAULTS;
  const m = new SasRec(sasrecShape(cfg, data.nItems), { seed: 1 });
  const windows = new SequenceWindows(userSequences(data, 0), cfg.maxLen, data.nItems, new Rng(1));
  windows.shuffle();
  const rng = new Rng(2);
  vars = m.variables;
  step = () => m.loss(windows.batch(0, Number(a.batch)), { dropout: cfg.seqDropout, loss: cfg.seqLoss, negatives: cfg.seqNegatives }, rng);
  perEpoch = Math.ceil(windows.size / Number(a.batch));
} else if (a.model === 'student') {
  const m = new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: 64, layers: 2 }, graph, { seed: 1 });
  vars = [m.ego];
  step = () => m.bprLoss(sampler.batch(0, Number(a.batch)), 1e-4);
  embeddings = () => m.finalEmbeddings();
} else if (a.model === 'kd') {
  const t = new Teacher(data, graph, TEACHER_DEFAULTS, { seed: 1 });
  const m = new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: 64, layers: 2 }, graph, { seed: 1 });
  const kd = kdTrainable(m, t, data, { ...STUDENT_DEFAULTS, kd: KD_DEFAULTS });
  vars = kd.variables;
  step = () => kd.loss(sampler.batch(0, Number(a.batch)));
  embeddings = () => kd.embeddings();
} else {
  const t = new Teacher(data, graph, TEACHER_DEFAULTS, { seed: 1 });
  vars = t.variables;
  step = () => t.loss(sampler.batch(0, Number(a.batch)), 1e-4, TEACHER_DEFAULTS.modalWeight).total;
  embeddings = () => t.embeddings();
}
for (let i = 0; i < 3; i++) opt.minimize(step, vars).dispose(); // warm-up
const profiled = Math.max(1, Number(a['profile-steps']));
const byKernel = new Map<string, { ms: number; n: number }>();
let wall = 0;
for (let p = 0; p < profiled; p++) {
  const t0 = performance.now();
  const prof = await tf.profile(() => {
    opt.minimize(step, vars).dispose();
  });
  wall += (performance.now() - t0) / profiled;
  for (const k of prof.kernels) {
    const key = a['by-shape'] ? `${k.name} ${JSON.stringify(k.inputShapes)}` : k.name;
    const e = byKernel.get(key) ?? { ms: 0, n: 0 };
    e.ms += (Number(k.kernelTimeMs) || 0) / profiled;
    e.n += 1 / profiled;
    byKernel.set(key, e);
  }
}
const kernelMs = [...byKernel.values()].reduce((x, e) => x + e.ms, 0);
console.log(`${a.model}: one step ${wall.toFixed(1)} ms wall, ${kernelMs.toFixed(1)} ms in kernels (mean of ${profiled} profiled steps; profiling adds overhead)`);
for (const [name, e] of [...byKernel].sort((x, y) => y[1].ms - x[1].ms).slice(0, a['by-shape'] ? 30 : 20)) {
  console.log(`${name.padEnd(a['by-shape'] ? 60 : 28)} ${e.ms.toFixed(1).padStart(8)} ms ${((100 * e.ms) / kernelMs).toFixed(1).padStart(5)}%  ×${Math.round(e.n)}`);
}

const steps = Number(a.steps);
const w0 = performance.now();
const c0 = process.cpuUsage();
for (let i = 0; i < steps; i++) {
  opt.minimize(step, vars).dispose();
}
const wallMs = (performance.now() - w0) / steps;
const c = process.cpuUsage(c0);
const cpuMs = (c.user + c.system) / 1000 / steps;
console.log(`${a.model}: ${steps} steps, mean ${wallMs.toFixed(1)} ms wall / ${cpuMs.toFixed(1)} ms CPU per step; ${perEpoch} steps per epoch → ${((wallMs * perEpoch) / 1000).toFixed(2)} s wall / ${((cpuMs * perEpoch) / 1000).toFixed(2)} s CPU per epoch (training only)`);

const emb = embeddings?.();
for (const split of ['val', 'test'] as const) {
  if (!emb) break;
  const e0 = performance.now();
  const ec = process.cpuUsage();
  const m = evaluateEmbeddings(emb, 64, data, { split, ks: [20, 50] });
  const eu = process.cpuUsage(ec);
  console.log(`evaluation of ${split} (${m.users} users × ${data.nItems} items): ${(performance.now() - e0).toFixed(0)} ms wall / ${((eu.user + eu.system) / 1000).toFixed(0)} ms CPU`);
}
