/**
 * bench:promptmm — the PromptMM method on a real dataset, through the CLI as a user runs it:
 *  - per seed: the teacher (stage 1), the distilled student (stage 2) and the plain
 *    student (--student-only) with the same budget and seed; test Recall@20 / NDCG@20,
 *    mean ± std over seeds; the teacher's own test metrics; wall time of each stage;
 *  - the ablation table (each switch alone, first seed), like the paper's Table 5;
 *  - parameter counts of teacher and student and their ratio;
 *  - the yardstick's evaluator on the dumped distilled student (first seed).
 *
 * The first seed's two-stage run goes alone (its wall time and seconds per epoch are the
 * reported ones); everything after it runs two jobs at a time, one per core, so their
 * timings are not reported. The teacher is trained once (first seed) and shared: it is the
 * offline artifact, and the seeds vary the students' initialisation and sampling.
 *
 *   npm run bench:promptmm -- [--data ../shared/data/tiktok] [--seeds 3] [--no-ablations] [--jobs 2] [--extra "--flag v …"]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: '../shared/data/tiktok' },
    seeds: { type: 'string', default: '3' },
    'no-ablations': { type: 'boolean', default: false },
    extra: { type: 'string', default: '' },
    yardstick: { type: 'string', default: '../shared/yardstick' },
    out: { type: 'string', default: 'bench/out/promptmm' },
    jobs: { type: 'string', default: '2' },
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

async function train(name: string, args: string[]): Promise<TrainOut> {
  const t = performance.now();
  const child = spawn('node', [cli, 'train', '--data', data, '--name', name, '--repo', repo, ...args, ...extra], {
    env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`train ${name} ${args.join(' ')} failed:\n${stderr.slice(-3000)}`);
  const res = JSON.parse(stdout.trim().split('\n').pop()!) as TrainOut;
  process.stderr.write(`  ${name} ${args.join(' ')}: ${((performance.now() - t) / 1000).toFixed(0)} s, test R@20 ${res.student?.test['recall@20']?.toFixed(4) ?? '-'}\n`);
  writeFileSync(join(out, `${name}.json`), JSON.stringify(res, null, 2));
  return res;
}

/** Runs the jobs `jobs` at a time. */
async function pool<T>(tasks: (() => Promise<T>)[], jobs: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]();
      }
    }),
  );
  return results;
}

/** A model folder that starts from the first seed's trained teacher (stage 2 only). */
function withTeacher(name: string): string {
  mkdirSync(join(repo, name, 'checkpoints'), { recursive: true });
  spawnSync('cp', ['-r', join(repo, `kd-${seeds[0]}`, 'checkpoints', 'teacher'), join(repo, name, 'checkpoints', 'teacher')]);
  return name;
}

const stats = (xs: number[]) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};
const fmt = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}`;

process.stderr.write(`two-stage run, seed ${seeds[0]} (alone)\n`);
const first = await train(`kd-${seeds[0]}`, ['--seed', String(seeds[0])]);
process.stderr.write(`the other runs, ${a.jobs} at a time\n`);
const s0 = String(seeds[0]);
const tasks: (() => Promise<TrainOut>)[] = [
  ...seeds.slice(1).map((seed) => () => train(withTeacher(`kd-${seed}`), ['--seed', String(seed), '--stage', 'student'])),
  ...seeds.map((seed) => () => train(`plain-${seed}`, ['--seed', String(seed), '--student-only'])),
];
const switches = a['no-ablations'] ? [] : ['--no-prompt', '--no-pairkd', '--no-listkd', '--no-disentangle', '--no-embkd'];
for (const sw of switches) {
  // --no-prompt changes the teacher too, so it runs both stages; the others reuse the first seed's teacher.
  const name = `abl${sw.replace(/^-+/, '-')}`;
  tasks.push(() => (sw === '--no-prompt' ? train(name, ['--seed', s0, sw]) : train(withTeacher(name), ['--seed', s0, '--stage', 'student', sw])));
}
const done = await pool(tasks, Number(a.jobs));
const kdRuns = [first, ...done.slice(0, seeds.length - 1)];
const plainRuns = done.slice(seeds.length - 1, 2 * seeds.length - 1);
const runs = seeds.map((seed, i) => ({ seed, kd: kdRuns[i], plain: plainRuns[i] }));
const ablationRuns = done.slice(2 * seeds.length - 1);

const metrics = ['recall@20', 'ndcg@20', 'recall@50', 'ndcg@50'];
const summary: Record<string, unknown> = { data, seeds, extra, date: new Date().toISOString() };
const table: Record<string, Record<string, { mean: number; std: number }>> = {};
for (const [label, pick] of [
  ['student (KD)', (r: (typeof runs)[0]) => r.kd.student.test],
  ['student (plain)', (r: (typeof runs)[0]) => r.plain.student.test],
] as const) {
  table[label] = Object.fromEntries(metrics.map((m) => [m, stats(runs.map((r) => pick(r)[m]))]));
}
summary.table = table;
summary.runs = runs;

const ablations: Record<string, Record<string, number>> = {};
if (switches.length) {
  ablations['PromptMM (all)'] = first.student.test;
  switches.forEach((sw, i) => (ablations[sw] = ablationRuns[i].student.test));
  summary.ablations = ablations;
}
summary.teacher = first.teacher;

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
lines.push(`| teacher (seed ${seeds[0]}) | ${metrics.map((m) => first.teacher!.test[m].toFixed(4)).join(' | ')} |`);
for (const [label, row] of Object.entries(table)) lines.push(`| ${label} | ${metrics.map((m) => fmt(row[m])).join(' | ')} |`);
const kdR = table['student (KD)']['recall@20'];
const plR = table['student (plain)']['recall@20'];
const kdN = table['student (KD)']['ndcg@20'];
const plN = table['student (plain)']['ndcg@20'];
lines.push('');
lines.push(`KD − plain: Recall@20 ${(kdR.mean - plR.mean).toFixed(4)} (2 × larger std ${(2 * Math.max(kdR.std, plR.std)).toFixed(4)}), NDCG@20 ${(kdN.mean - plN.mean).toFixed(4)} (2 × larger std ${(2 * Math.max(kdN.std, plN.std)).toFixed(4)})`);
const r0 = runs[0].kd;
lines.push(`parameters: teacher ${r0.parameters.teacher}, student ${r0.parameters.student}, ratio ${r0.parameters.ratio?.toFixed(3)}`);
lines.push(
  `two-stage run alone (seed ${seeds[0]}): ${(first.wallSeconds / 60).toFixed(1)} min wall; teacher ${first.teacher!.secondsPerEpoch.toFixed(2)} s/epoch × ${first.teacher!.epochsRun} epochs (best ${first.teacher!.bestEpoch}), ` +
    `distilled student ${first.student.secondsPerEpoch.toFixed(2)} s/epoch × ${first.student.epochsRun} epochs (best ${first.student.bestEpoch}); peak RSS ${first.peakRssMiB} MiB`,
);
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
