/**
 * bench:sequential — the SASRec student against the PyTorch yardstick
 * (../shared/yardstick/sasrec_ref.py), same data and settings (dim 64, 2 blocks, 1 head, max_len 50,
 * lr 1e-3, batch 256, dropout 0.2, evaluation every 5 epochs, stop after 6 without a better
 * validation NDCG@10), one after the other so they do not share the cores: best-by-validation test
 * NDCG@10 / Recall@10 (ours over several seeds, mean ± std), training seconds per epoch, peak RSS,
 * and the yardstick's evaluator (mmrec_data.evaluate) on our dumped vectors.
 *
 *   npm run bench:sequential -- [--data ../shared/data/scientific] [--seeds 2024,2025,2026] [--epochs 200]
 *                               [--skip-yardstick] [--serving FILE.json]
 *
 * --serving: the serving half's figures (the sequential bundle's /recommend and encoder
 * latencies, measured by its own script) as a JSON object, added to the table and the result
 * file under `serving`. Results: bench/results/sequential-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: '../shared/data/scientific' },
    seeds: { type: 'string', default: '2024,2025,2026' },
    epochs: { type: 'string', default: '200' },
    'skip-yardstick': { type: 'boolean', default: false },
    yardstick: { type: 'string', default: '../shared/yardstick' },
    python: { type: 'string', default: '/usr/bin/python3' },
    serving: { type: 'string' },
  },
});
const data = resolve(a.data!);
const yard = resolve(a.yardstick!);
const seeds = a.seeds!.split(',').map(Number);
const out = resolve('bench/out/sequential');
const repo = join(out, 'models');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const cli = resolve('dist/cli/promptmm.js');
const KEYS = ['ndcg@10', 'recall@10', 'ndcg@20', 'recall@20', 'ndcg@50', 'recall@50'];

/** Runs a command under /usr/bin/time for its peak RSS; its stdout and peak RSS in MiB. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { stdout: string; peakRssMiB: number; wallSeconds: number } {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'maxrss-kib %M', cmd, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  const wallSeconds = (performance.now() - t) / 1000;
  process.stderr.write(`  ${cmd} ${args.slice(0, 3).join(' ')} … ${wallSeconds.toFixed(1)} s\n`);
  const rss = /maxrss-kib (\d+)/.exec(r.stderr);
  return { stdout: r.stdout, peakRssMiB: rss ? Number(rss[1]) / 1024 : NaN, wallSeconds };
}

const meanStd = (xs: number[]) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};

const report: Record<string, unknown> = { data, date: new Date().toISOString(), loadavgStart: readFileSync('/proc/loadavg', 'utf8').trim() };

// 1. ours, one training run per seed (each its own process: its own peak RSS)
const runs: { seed: number; bestEpoch: number; epochsRun: number; secondsPerEpoch: number; peakRssMiB: number; test: Record<string, number>; val: Record<string, number> }[] = [];
for (const seed of seeds) {
  process.stderr.write(`training the promptmm SASRec student, seed ${seed}…\n`);
  const r = run('node', [cli, 'train', '--data', data, '--name', `sasrec-${seed}`, '--repo', repo, '--model', 'sasrec', '--seed', String(seed), '--epochs', a.epochs!, '--no-progress'], { PROMPTMM_LOG_LEVEL: 'warn' });
  const s = JSON.parse(r.stdout.trim().split('\n').pop()!).student;
  runs.push({ seed, bestEpoch: s.bestEpoch, epochsRun: s.epochsRun, secondsPerEpoch: s.secondsPerEpoch, peakRssMiB: r.peakRssMiB, test: s.test, val: s.val });
}
const ours = {
  runs,
  test: Object.fromEntries(KEYS.map((k) => [k, meanStd(runs.map((r) => r.test[k]))])),
  secondsPerEpoch: meanStd(runs.map((r) => r.secondsPerEpoch)),
  peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
};
report.promptmm = ours;

// 2. the yardstick's evaluator on the first seed's dumped vectors (test split), against `eval`
const dumpDir = join(out, 'dump');
const first = `sasrec-${seeds[0]}`;
run('node', [cli, 'dump', '--name', first, '--repo', repo, '--split', 'test', '--out', dumpDir], { PROMPTMM_LOG_LEVEL: 'warn' });
const oursEval = JSON.parse(run('node', [cli, 'eval', '--name', first, '--repo', repo, '--split', 'test', '--json'], { PROMPTMM_LOG_LEVEL: 'warn' }).stdout);
const py = `
import sys, json, numpy as np
sys.path.insert(0, ${JSON.stringify(yard)})
from mmrec_data import load, evaluate
d = load(${JSON.stringify(data)})
U = np.load(${JSON.stringify(join(dumpDir, 'user_embeddings.npy'))}); I = np.load(${JSON.stringify(join(dumpDir, 'item_embeddings.npy'))})
print(json.dumps(evaluate(U, I, d, split=2, ks=(10, 20, 50), exclude=(0, 1))))
`;
import { scriptArgs } from '../core/script-args.js';
const yardEval = JSON.parse(run(a.python!, ['-c', py]).stdout.trim());
report.evaluatorAgreement = Object.fromEntries(KEYS.map((k) => [k, { promptmm: oursEval[k], yardstick: yardEval[k], absDiff: Math.abs(oursEval[k] - yardEval[k]) }]));

// 3. the yardstick's own run (its seed is fixed at 2024); it prints an epoch's training time (no evaluation) every 5 epochs
type Yard = { test: Record<string, number>; bestEpoch: number; secondsPerEpoch: number; peakRssMiB: number; log: string[] };
let yd: Yard | undefined;
if (!a['skip-yardstick']) {
  process.stderr.write('training the yardstick (PyTorch)…\n');
  const y = run(a.python!, [join(yard, 'sasrec_ref.py'), data, a.epochs!, '64', '2', '1', '50', '1e-3', '256', '0.2']);
  const secs = [...y.stdout.matchAll(/ train ([\d.]+)s /g)].map((m) => Number(m[1]));
  const best = /best-by-val \(epoch (\d+)\) test: (.*)/.exec(y.stdout);
  if (!best) throw new Error(`the yardstick printed no best-by-val line:\n${y.stdout.slice(-2000)}`);
  const pairs = best[2].trim().split(/\s+/);
  const test: Record<string, number> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) test[pairs[i]] = Number(pairs[i + 1]);
  yd = { test, bestEpoch: Number(best[1]), secondsPerEpoch: meanStd(secs).mean, peakRssMiB: y.peakRssMiB, log: y.stdout.trim().split('\n') };
  report.yardstick = yd;
}

const serving = a.serving ? (JSON.parse(readFileSync(a.serving, 'utf8')) as Record<string, unknown>) : undefined;
if (serving) report.serving = serving;
report.loadavgEnd = readFileSync('/proc/loadavg', 'utf8').trim();
const day = new Date().toISOString().slice(0, 10);
const resultFile = resolve('bench/results', `sequential-${day}.json`);
writeFileAtomic(resultFile, Buffer.from(JSON.stringify(report, null, 2)));

// The table
console.log(`\nbest-by-validation test metrics on ${data} (promptmm: ${seeds.length} seeds, mean ± std; yardstick: one run, seed 2024)`);
console.log(`metric      promptmm            yardstick   ratio`);
for (const k of KEYS) {
  const o = ours.test[k];
  const y = yd?.test[k];
  console.log(`${k.padEnd(10)}  ${o.mean.toFixed(4)} ± ${o.std.toFixed(4)}   ${y === undefined ? '     -' : y.toFixed(4)}   ${y === undefined ? '' : (o.mean / y).toFixed(3)}`);
}
console.log(`\nbest epochs ${runs.map((r) => `${r.bestEpoch}/${r.epochsRun}`).join(', ')}` + (yd ? `; yardstick ${yd.bestEpoch}` : ''));
console.log(`training seconds/epoch: promptmm ${ours.secondsPerEpoch.mean.toFixed(2)} ± ${ours.secondsPerEpoch.std.toFixed(2)}` + (yd ? `, yardstick ${yd.secondsPerEpoch.toFixed(2)}, ratio ${(ours.secondsPerEpoch.mean / yd.secondsPerEpoch).toFixed(2)}` : ''));
console.log(`peak RSS: promptmm ${ours.peakRssMiB.toFixed(0)} MiB` + (yd ? `, yardstick ${yd.peakRssMiB.toFixed(0)} MiB` : ''));
console.log(`\nsame vectors (seed ${seeds[0]}, test split), both evaluators:`);
for (const [k, v] of Object.entries(report.evaluatorAgreement as Record<string, { promptmm: number; yardstick: number; absDiff: number }>)) {
  console.log(`${k.padEnd(10)} promptmm ${v.promptmm.toFixed(6)}  mmrec_data ${v.yardstick.toFixed(6)}  |diff| ${v.absDiff.toExponential(1)}`);
}
if (serving) {
  console.log('\nserving (from --serving):');
  for (const [k, v] of Object.entries(serving)) console.log(`${k.padEnd(28)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
}
console.log(`\nload average: start ${report.loadavgStart as string}; end ${report.loadavgEnd as string}`);
console.log(`results: ${resultFile}`);
