/**
 * bench:student — the LightGCN student against the independent numpy yardstick, same data,
 * same settings, same machine, one run each (sequential, so they do not share the cores):
 * best-by-validation test metrics, seconds per epoch, peak RSS, and the yardstick's own
 * evaluator applied to our dumped embeddings.
 *
 *   npm run bench:student -- [--data ../shared/data/tiktok] [--epochs 400] [--yardstick-epochs 200] [--skip-yardstick]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: '../shared/data/tiktok' },
    epochs: { type: 'string', default: '400' },
    'yardstick-epochs': { type: 'string', default: '200' },
    'skip-yardstick': { type: 'boolean', default: false },
    yardstick: { type: 'string', default: '../shared/yardstick' },
  },
});
const data = resolve(a.data!);
const yard = resolve(a.yardstick!);
const out = resolve('bench/out/student');
const repo = join(out, 'models');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const cli = resolve('dist/cli/promptmm.js');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  process.stderr.write(`  ${cmd} ${args.slice(0, 2).join(' ')} … ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  return r.stdout;
}

const report: Record<string, unknown> = { data, date: new Date().toISOString() };

// 1. ours
process.stderr.write('training the promptmm student…\n');
const trainOut = run('node', [cli, 'train', '--data', data, '--name', 'bench', '--repo', repo, '--student-only', '--epochs', a.epochs!, '--no-progress'], { PROMPTMM_LOG_LEVEL: 'warn' });
const summary = JSON.parse(trainOut.trim().split('\n').pop()!);
const ours = { ...summary.student, backend: summary.backend, peakRssMiB: summary.peakRssMiB };
report.promptmm = ours;

// 2. the yardstick's evaluator on our dumped embeddings, against our own evaluator
const dumpDir = join(out, 'dump');
run('node', [cli, 'dump', '--name', 'bench', '--repo', repo, '--out', dumpDir], { PROMPTMM_LOG_LEVEL: 'warn' });
const oursEval = JSON.parse(run('node', [cli, 'eval', '--name', 'bench', '--repo', repo, '--split', 'test', '--json'], { PROMPTMM_LOG_LEVEL: 'warn' }));
const py = `
import sys, json, numpy as np
sys.path.insert(0, ${JSON.stringify(yard)})
from mmrec_data import load, evaluate
d = load(${JSON.stringify(data)})
U = np.load(${JSON.stringify(join(dumpDir, 'user_embeddings.npy'))}); I = np.load(${JSON.stringify(join(dumpDir, 'item_embeddings.npy'))})
print(json.dumps(evaluate(U, I, d, split=2, exclude=(0, 1))))
`;
import { scriptArgs } from '../core/script-args.js';
const yardEval = JSON.parse(run('python3', ['-c', py]).trim());
const agreement = Object.fromEntries(
  ['recall@20', 'ndcg@20', 'recall@50', 'ndcg@50'].map((k) => [k, { promptmm: oursEval[k], yardstick: yardEval[k], absDiff: Math.abs(oursEval[k] - yardEval[k]) }]),
);
report.evaluatorAgreement = agreement;

// 3. the yardstick's own training run
if (!a['skip-yardstick']) {
  process.stderr.write('training the yardstick (numpy)…\n');
  const y = run('python3', [join(yard, 'lightgcn_ref.py'), data, a['yardstick-epochs']!]);
  const secs = [...y.matchAll(/ep \d+ loss [\d.]+ ([\d.]+)s/g)].map((m) => Number(m[1]));
  const best = y.match(/best-by-val test: (\{.*\})/);
  // printed as a Python dict, possibly with np.float64(...) wrappers
  const yardBest = best ? JSON.parse(best[1].replace(/np\.float64\(([^)]*)\)/g, '$1').replace(/'/g, '"')) : null;
  // The yardstick prints an epoch's time only every 10 epochs, and that time includes its
  // evaluation of validation and test (~1 s here). Its training time alone: runs of 1 and
  // 11 epochs differ by 10 epochs and one evaluation, and epoch 11's printed time is one
  // epoch plus one evaluation, so 9 epochs = (T11 − T1) − printed(11).
  const timed = (n: number) => {
    const t = performance.now();
    const o = run('python3', [join(yard, 'lightgcn_ref.py'), data, String(n)]);
    return { wall: (performance.now() - t) / 1000, printed: Number(o.match(/ep \d+ loss [\d.]+ ([\d.]+)s/g)!.pop()!.split(' ').pop()!.replace('s', '')) };
  };
  const t1 = timed(1);
  const t11 = timed(11);
  const trainOnly = (t11.wall - t1.wall - t11.printed) / 9;
  report.yardstick = { secondsPerEpochPrinted: secs.reduce((s, x) => s + x, 0) / secs.length, secondsPerEpochTraining: trainOnly, test: yardBest, log: y.trim().split('\n') };
}

writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2));

// The table
const yd = report.yardstick as { secondsPerEpochPrinted: number; secondsPerEpochTraining: number; test: Record<string, number> } | undefined;
const line = (k: string) => {
  const o = ours.test[k];
  const y = yd?.test?.[k];
  return `${k.padEnd(10)} ${o.toFixed(4).padStart(9)} ${y === undefined ? '        -' : y.toFixed(4).padStart(9)} ${y === undefined ? '' : `${(((o - y) / y) * 100).toFixed(1).padStart(6)}%`}`;
};
console.log(`\nbest-by-validation test metrics on ${data}`);
console.log(`metric      promptmm yardstick   diff`);
for (const k of ['recall@20', 'ndcg@20', 'recall@50', 'ndcg@50']) console.log(line(k));
console.log(`\nbest epoch ${ours.bestEpoch} of ${ours.epochsRun} run (early stop: ${ours.stoppedEarly})`);
console.log(`seconds/epoch, training only: promptmm ${ours.secondsPerEpoch.toFixed(3)} (${ours.backend})` + (yd ? `, yardstick ${yd.secondsPerEpochTraining.toFixed(3)}, ratio ${(ours.secondsPerEpoch / yd.secondsPerEpochTraining).toFixed(2)}` : ''));
if (yd) console.log(`(the yardstick's printed epoch times, which include its evaluation: ${yd.secondsPerEpochPrinted.toFixed(3)} s)`);
console.log(`peak RSS of the training run: ${ours.peakRssMiB} MiB`);
console.log(`\nsame embeddings, both evaluators (test split):`);
for (const [k, v] of Object.entries(agreement)) console.log(`${k.padEnd(10)} promptmm ${v.promptmm.toFixed(6)}  yardstick ${v.yardstick.toFixed(6)}  |diff| ${v.absDiff.toExponential(1)}`);
console.log(`\nreport: ${join(out, 'report.json')}`);
