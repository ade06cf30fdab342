/**
 * bench:promptmm — the PromptMM method on a real dataset, through the CLI as a user runs it:
 *  - per seed: the teacher (stage 1), the distilled student (stage 2) and the plain
 *    student (--student-only) with the same budget and seed; test Recall@20 / NDCG@20,
 *    mean ± std over seeds; the teacher's own test metrics; wall time of each stage;
 *  - the ablation table (each switch alone, first seed), like the paper's Table 5;
 *  - parameter counts of teacher and student and their ratio;
 *  - the yardstick's evaluator on the dumped distilled student (first seed).
 *
 *   npm run bench:promptmm -- [--data ../shared/data/tiktok] [--seeds 3] [--no-ablations] [--extra "--flag v …"]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    data: { type: 'string', default: '../shared/data/tiktok' },
    seeds: { type: 'string', default: '3' },
    'no-ablations': { type: 'boolean', default: false },
    extra: { type: 'string', default: '' },
    yardstick: { type: 'string', default: '../shared/yardstick' },
    out: { type: 'string', default: 'bench/out/promptmm' },
  },
});
const data = resolve(a.data!);
const out = resolve(a.out!);
const repo = join(out, 'models');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const cli = resolve('dist/cli/promptmm.js');
const extra = a.extra!.split(/\s+/).filter(Boolean);
const seeds = Array.from({ length: Number(a.seeds) }, (_, i) => 2024 + i);

interface Stage {
  test: Record<string, number>;
  val: Record<string, number>;
  secondsPerEpoch: number;
  wallSeconds: number;
  bestEpoch: number;
  epochsRun: number;
}
interface TrainOut {
  mode: string;
  teacher?: Stage;
  student: Stage;
  parameters: { teacher?: number; student: number; ratio?: number };
  wallSeconds: number;
  peakRssMiB: number;
}

function train(name: string, args: string[]): TrainOut {
  const t = performance.now();
  const r = spawnSync('node', [cli, 'train', '--data', data, '--name', name, '--repo', repo, ...args, ...extra], {
    encoding: 'utf8',
    env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' },
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`train ${name} ${args.join(' ')} failed:\n${r.stderr.slice(-3000)}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as TrainOut;
  process.stderr.write(`  ${name} ${args.join(' ')}: ${((performance.now() - t) / 1000).toFixed(0)} s, test R@20 ${res.student?.test['recall@20']?.toFixed(4) ?? '-'}\n`);
  writeFileSync(join(out, `${name}.json`), JSON.stringify(res, null, 2));
  return res;
}

const stats = (xs: number[]) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};
const fmt = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}`;

const runs: { seed: number; kd: TrainOut; plain: TrainOut }[] = [];
for (const seed of seeds) {
  process.stderr.write(`seed ${seed}\n`);
  const kd = train(`kd-${seed}`, ['--seed', String(seed)]);
  const plain = train(`plain-${seed}`, ['--seed', String(seed), '--student-only']);
  runs.push({ seed, kd, plain });
}

const metrics = ['recall@20', 'ndcg@20', 'recall@50', 'ndcg@50'];
const summary: Record<string, unknown> = { data, seeds, extra, date: new Date().toISOString() };
const table: Record<string, Record<string, { mean: number; std: number }>> = {};
for (const [label, pick] of [
  ['teacher', (r: (typeof runs)[0]) => r.kd.teacher!.test],
  ['student (KD)', (r: (typeof runs)[0]) => r.kd.student.test],
  ['student (plain)', (r: (typeof runs)[0]) => r.plain.student.test],
] as const) {
  table[label] = Object.fromEntries(metrics.map((m) => [m, stats(runs.map((r) => pick(r)[m]))]));
}
summary.table = table;
summary.runs = runs;

// Ablations: each switch alone on the first seed. --no-prompt changes the teacher too, so it
// runs both stages; the others reuse the first seed's teacher (stage 2 only).
const ablations: Record<string, Record<string, number>> = {};
if (!a['no-ablations']) {
  process.stderr.write('ablations\n');
  const s0 = String(seeds[0]);
  ablations['PromptMM (all)'] = runs[0].kd.student.test;
  ablations['--no-prompt'] = train('abl-no-prompt', ['--seed', s0, '--no-prompt']).student.test;
  for (const sw of ['--no-pairkd', '--no-listkd', '--no-disentangle', '--no-embkd']) {
    // copy the first seed's teacher into a fresh model folder, then stage 2 with the switch
    const name = `abl${sw.replace(/^-+/, '-')}`;
    mkdirSync(join(repo, name, 'checkpoints'), { recursive: true });
    spawnSync('cp', ['-r', join(repo, `kd-${s0}`, 'checkpoints', 'teacher'), join(repo, name, 'checkpoints', 'teacher')]);
    ablations[sw] = train(name, ['--seed', s0, '--stage', 'student', sw]).student.test;
  }
  summary.ablations = ablations;
}

// The yardstick's evaluator on the first seed's distilled student.
const dumpDir = join(out, 'dump');
const d = spawnSync('node', [cli, 'dump', '--name', `kd-${seeds[0]}`, '--repo', repo, '--out', dumpDir], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' } });
if (d.status === 0 && existsSync(resolve(a.yardstick!, 'mmrec_data.py'))) {
  const py = `
import sys, json, numpy as np
sys.path.insert(0, ${JSON.stringify(resolve(a.yardstick!))})
from mmrec_data import load, evaluate
d = load(${JSON.stringify(data)})
U = np.load(${JSON.stringify(join(dumpDir, 'user_embeddings.npy'))}); I = np.load(${JSON.stringify(join(dumpDir, 'item_embeddings.npy'))})
print(json.dumps(evaluate(U, I, d, split=2, exclude=(0, 1))))
`;
  const y = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
  if (y.status === 0) summary.yardstickEvaluator = { promptmm: runs[0].kd.student.test, yardstick: JSON.parse(y.stdout.trim()) };
}
writeFileSync(join(out, 'report.json'), JSON.stringify(summary, null, 2));

// The report
const lines: string[] = [];
lines.push(`PromptMM on ${data}, seeds ${seeds.join(', ')} (test split, best epoch by validation Recall@20)`, '');
lines.push(`| model | Recall@20 | NDCG@20 | Recall@50 | NDCG@50 |`, `|---|---|---|---|---|`);
for (const [label, row] of Object.entries(table)) lines.push(`| ${label} | ${metrics.map((m) => fmt(row[m])).join(' | ')} |`);
const kdR = table['student (KD)']['recall@20'];
const plR = table['student (plain)']['recall@20'];
const kdN = table['student (KD)']['ndcg@20'];
const plN = table['student (plain)']['ndcg@20'];
lines.push('');
lines.push(`KD − plain: Recall@20 ${(kdR.mean - plR.mean).toFixed(4)} (2 × larger std ${(2 * Math.max(kdR.std, plR.std)).toFixed(4)}), NDCG@20 ${(kdN.mean - plN.mean).toFixed(4)} (2 × larger std ${(2 * Math.max(kdN.std, plN.std)).toFixed(4)})`);
const r0 = runs[0].kd;
lines.push(`parameters: teacher ${r0.parameters.teacher}, student ${r0.parameters.student}, ratio ${r0.parameters.ratio?.toFixed(3)}`);
const wall = stats(runs.map((r) => r.kd.wallSeconds));
const tEp = stats(runs.map((r) => r.kd.teacher!.secondsPerEpoch));
const sEp = stats(runs.map((r) => r.kd.student.secondsPerEpoch));
const pEp = stats(runs.map((r) => r.plain.student.secondsPerEpoch));
lines.push(`two-stage wall time: ${(wall.mean / 60).toFixed(1)} ± ${(wall.std / 60).toFixed(1)} min; s/epoch: teacher ${tEp.mean.toFixed(2)}, KD student ${sEp.mean.toFixed(2)}, plain student ${pEp.mean.toFixed(2)}; peak RSS ${Math.max(...runs.map((r) => r.kd.peakRssMiB))} MiB`);
if (Object.keys(ablations).length) {
  lines.push('', `ablations (seed ${seeds[0]}):`, '', `| variant | Recall@20 | NDCG@20 | Recall@50 | NDCG@50 |`, `|---|---|---|---|---|`);
  for (const [k, v] of Object.entries(ablations)) lines.push(`| ${k} | ${metrics.map((m) => v[m].toFixed(4)).join(' | ')} |`);
}
if (summary.yardstickEvaluator) {
  const y = summary.yardstickEvaluator as { promptmm: Record<string, number>; yardstick: Record<string, number> };
  lines.push('', `yardstick evaluator on the dumped KD student (seed ${seeds[0]}): ` + metrics.map((m) => `${m} ${y.yardstick[m].toFixed(4)} (ours ${y.promptmm[m].toFixed(4)})`).join(', '));
}
writeFileSync(join(out, 'report.md'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
