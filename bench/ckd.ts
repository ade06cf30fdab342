/**
 * bench:ckd — issue 21: on each dataset, through the CLI as a user runs it, with the same
 * defaults everywhere (no per-dataset setting):
 *  - `train --teacher promptmm --force-kd`: the PromptMM teacher and its distilled student;
 *  - `train --teacher ckd --force-kd`: the uni-modal teachers, the CKD teacher and its student;
 *    each run's teacher guard trains the plain student of the same budget (checkpoints/plain/),
 *    the reference both are compared with (--force-kd: the students are measured even when the
 *    guard would have skipped KD; the guard's decision is reported);
 *  - test Recall@20 / NDCG@20 of every model; per-user paired gains of each distilled student
 *    over the plain one with standard errors (bench/paired-users.py on `dump`s), validation and
 *    test; per-stage wall time, epochs and the process's peak RSS; the CKD teacher's modality
 *    weights over training (its modality-weights.svg, copied beside the results).
 *
 *   npm run bench:ckd -- [--data ../shared/data/tiktok,../shared/data/scientific] [--epochs N] [--seed 2024]
 *                        [--extra "--flag v …"] [--reuse] [--runs promptmm=NAME,ckd=NAME] [--jobs 2] [--out bench/out/ckd] [--tag DATE]
 *
 * --reuse keeps a run whose summary (<out>/<dataset>/<run>.json) is already there (runs are
 * long: start them early, in the background); --runs names the runs to take (with --reuse: runs
 * started by hand, e.g. with other budgets: say so with the figures); --epochs caps every stage.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: '../shared/data/tiktok,../shared/data/scientific' },
    epochs: { type: 'string' },
    seed: { type: 'string', default: '2024' },
    extra: { type: 'string', default: '' },
    reuse: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/out/ckd' },
    tag: { type: 'string', default: new Date().toISOString().slice(0, 10) },
    jobs: { type: 'string', default: '1' },
    runs: { type: 'string' },
  },
});
const cli = resolve('dist/cli/promptmm.js');
const out = resolve(a.out!);
const extra = [...a.extra!.split(/\s+/).filter(Boolean), ...(a.epochs ? ['--epochs', a.epochs] : []), '--seed', a.seed!];
const RUNS = { promptmm: ['--teacher', 'promptmm', '--force-kd'], ckd: ['--teacher', 'ckd', '--force-kd'] } as const;
// --runs promptmm=NAME,ckd=NAME: take those runs' summaries and models (e.g. started earlier with other budgets; say so)
const alias: Record<string, string> = Object.fromEntries((a.runs ?? '').split(',').filter(Boolean).map((kv) => kv.split('=')));
const nm = (n: RunName) => alias[n] ?? n;
type RunName = keyof typeof RUNS;

interface Stage {
  test: Record<string, number>;
  val: Record<string, number>;
  secondsPerEpoch: number;
  wallSeconds: number;
  bestEpoch: number;
  epochsRun: number;
  endedOn: string;
  peakRssMiB: number;
  skipped?: boolean;
}
interface Summary {
  mode: string;
  teacherKind?: string;
  unimodal?: Record<string, Stage>;
  teacher?: Stage;
  guard?: { metric: string; teacher: number; plain: number; relative: number; decision: string; cached: boolean };
  plain?: Stage;
  student?: Stage;
  wallSeconds: number;
  peakRssMiB: number;
}

const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

async function train(data: string, repo: string, file: string, name: string, args: readonly string[]): Promise<Summary> {
  if (a.reuse && existsSync(file)) {
    try {
      const s = JSON.parse(readFileSync(file, 'utf8')) as Summary;
      process.stderr.write(`  ${name}: reused ${file}\n`);
      return s;
    } catch {
      /* an unfinished run: train again */
    }
  }
  const t = performance.now();
  const l0 = load();
  const child = spawn('node', [cli, 'train', '--data', data, '--name', name, '--repo', repo, ...args, ...extra], { env: { ...process.env, PROMPTMM_LOG_LEVEL: process.env.PROMPTMM_LOG_LEVEL ?? 'warn' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`train ${name} ${args.join(' ')} failed:\n${stderr.slice(-3000)}`);
  writeFileSync(file, stdout.trim().split('\n').pop()!);
  process.stderr.write(`  ${name}: ${((performance.now() - t) / 1000).toFixed(0)} s (load ${l0} → ${load()})\n`);
  return JSON.parse(readFileSync(file, 'utf8')) as Summary;
}

/** The run's student (or, with `plain`, the guard's plain student through a model name pointing at it) dumped for paired-users.py. */
function dump(repo: string, name: string, dir: string, plain = false): string {
  let model = name;
  if (plain) {
    model = `${name}-plain`;
    const ck = join(repo, model, 'checkpoints');
    rmSync(join(repo, model), { recursive: true, force: true });
    mkdirSync(ck, { recursive: true });
    symlinkSync(resolve(repo, name, 'checkpoints', 'plain'), join(ck, 'student'));
  }
  const r = spawnSync('node', [cli, 'dump', '--name', model, '--repo', repo, '--out', dir], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' } });
  if (r.status !== 0) throw new Error(`dump ${model} failed: ${r.stderr.slice(-2000)}`);
  return dir;
}

interface Paired {
  split: string;
  users: number;
  recall: { a: number; b: number; diff: number; se: number };
  ndcg: { a: number; b: number; diff: number; se: number };
}

function paired(dA: string, dB: string, data: string): Paired[] {
  const r = spawnSync('python3', ['bench/paired-users.py', dA, dB, '--data', data], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`paired-users.py failed: ${r.stderr.slice(-2000)}`);
  const num = '([-+]?[0-9.]+)';
  const re = new RegExp(`^(val|test) \\((\\d+) users.*R@20 ${num} vs ${num}, diff ${num} ± ${num}.*N@20 ${num} vs ${num}, diff ${num} ± ${num}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => re.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ split: m[1], users: Number(m[2]), recall: { a: +m[3], b: +m[4], diff: +m[5], se: +m[6] }, ndcg: { a: +m[7], b: +m[8], diff: +m[9], se: +m[10] } }));
}

const f4 = (x?: number) => (typeof x === 'number' ? x.toFixed(4) : '–');
const mins = (s?: number) => (typeof s === 'number' ? `${(s / 60).toFixed(1)} min` : '–');

const results: Record<string, unknown> = {};
const lines: string[] = [`bench:ckd ${a.tag}; extra flags: ${extra.join(' ')}; load at start ${load()}`];
for (const dataArg of a.data!.split(',')) {
  const data = resolve(dataArg);
  const ds = basename(data);
  const dir = join(out, ds);
  const repo = join(dir, 'models');
  mkdirSync(repo, { recursive: true });
  process.stderr.write(`${ds}:\n`);
  const runs = {} as Record<RunName, Summary>;
  const jobs = (Object.keys(RUNS) as RunName[]).map((n) => () => train(data, repo, join(dir, `${nm(n)}.json`), nm(n), RUNS[n]));
  if (Number(a.jobs) > 1) (await Promise.all(jobs.map((j) => j()))).forEach((s, k) => (runs[(Object.keys(RUNS) as RunName[])[k]] = s));
  else for (const [k, j] of jobs.entries()) runs[(Object.keys(RUNS) as RunName[])[k]] = await j();
  // each student against its own run's plain student (the guard's: same budget, same seed)
  const dumps = join(dir, 'dumps');
  const pairs: Record<string, Paired[]> = {};
  const plains: Record<string, unknown> = {};
  for (const n of Object.keys(RUNS) as RunName[]) {
    const m = JSON.parse(readFileSync(join(repo, nm(n), 'checkpoints', 'plain', 'model.json'), 'utf8')).meta;
    plains[n] = { test: m.metrics.test, val: m.metrics.val, bestEpoch: m.epoch, epochsRun: m.finished?.lastEpoch, endedOn: m.finished?.endedOn, wallSeconds: runs[n].plain?.wallSeconds, peakRssMiB: runs[n].plain?.peakRssMiB };
    pairs[n] = paired(dump(repo, nm(n), join(dumps, n)), dump(repo, nm(n), join(dumps, `${n}-plain`), true), data);
  }
  const svg = join(repo, nm('ckd'), 'checkpoints', 'teacher', 'modality-weights.svg');
  mkdirSync('bench/results', { recursive: true });
  const svgOut = `bench/results/ckd-${ds}-modality-weights-${a.tag}.svg`;
  if (existsSync(svg)) copyFileSync(svg, svgOut);
  const weights = existsSync(join(repo, nm('ckd'), 'checkpoints', 'teacher', 'curve.json'))
    ? (JSON.parse(readFileSync(join(repo, nm('ckd'), 'checkpoints', 'teacher', 'curve.json'), 'utf8')) as { epoch: number; terms?: Record<string, number> }[]).map((r) => ({ epoch: r.epoch, ...Object.fromEntries(Object.entries(r.terms ?? {}).filter(([k]) => k.startsWith('w_'))) }))
    : [];
  results[ds] = { plain: plains, runs, paired: pairs, modalityWeights: weights, plot: existsSync(svg) ? svgOut : null };

  lines.push('', `## ${ds} (seed ${a.seed}${a.epochs ? `, --epochs ${a.epochs}` : ''})`, '', '| model | val R@20 | test R@20 | test N@20 | best / run epochs | wall | peak RSS |', '|---|---|---|---|---|---|---|');
  const row = (label: string, s?: Partial<Stage>) => s && lines.push(`| ${label} | ${f4(s.val?.['recall@20'])} | ${f4(s.test?.['recall@20'])} | ${f4(s.test?.['ndcg@20'])} | ${s.bestEpoch ?? '–'} / ${s.epochsRun ?? '–'} ${s.endedOn ?? ''} | ${mins(s.wallSeconds)} | ${s.peakRssMiB ? Math.round(s.peakRssMiB) + ' MiB' : '–'} |`);
  row('plain student (PromptMM run)', plains.promptmm as Partial<Stage>);
  row('PromptMM teacher', runs.promptmm.teacher);
  row('PromptMM student', runs.promptmm.student);
  for (const [m, s] of Object.entries(runs.ckd.unimodal ?? {})) row(`uni-modal teacher (${m})`, s);
  row('plain student (CKD run)', plains.ckd as Partial<Stage>);
  row('CKD teacher', runs.ckd.teacher);
  row('CKD student', runs.ckd.student);
  lines.push('', 'paired per-user gain over the plain student of the same run (mean ± SE; bench/paired-users.py):');
  for (const n of Object.keys(RUNS) as RunName[]) {
    for (const p of pairs[n]) {
      const rel = p.recall.b > 0 ? (100 * p.recall.diff) / p.recall.b : 0;
      lines.push(`  ${n} student, ${p.split} (${p.users} users): R@20 ${p.recall.diff >= 0 ? '+' : ''}${p.recall.diff.toFixed(4)} ± ${p.recall.se.toFixed(4)} (${rel >= 0 ? '+' : ''}${rel.toFixed(1)}%, ${(p.recall.diff / (p.recall.se || 1)).toFixed(1)} SE); N@20 ${p.ndcg.diff >= 0 ? '+' : ''}${p.ndcg.diff.toFixed(4)} ± ${p.ndcg.se.toFixed(4)}`);
    }
    const g = runs[n].guard;
    if (g) lines.push(`  ${n} guard: teacher val ${g.metric} ${f4(g.teacher)} vs plain ${f4(g.plain)} (${(100 * g.relative).toFixed(1)}%): ${g.decision}`);
  }
  const two = (s: Summary) => (s.unimodal ? Object.values(s.unimodal).reduce((x, u) => x + u.wallSeconds, 0) : 0) + (s.teacher?.wallSeconds ?? 0) + (s.student?.wallSeconds ?? 0);
  lines.push(`  two-stage wall (uni-modal + teacher + student, without the guard's plain student): PromptMM ${mins(two(runs.promptmm))}, CKD ${mins(two(runs.ckd))}; load now ${load()}`);
  if (weights.length) {
    const last = weights[weights.length - 1];
    lines.push(`  CKD modality weights, epoch 1 → ${last.epoch}: ` + Object.keys(last).filter((k) => k.startsWith('w_')).map((k) => `${k.slice(2)} ${(weights[0] as Record<string, number>)[k]?.toFixed(3)} → ${(last as Record<string, number>)[k].toFixed(3)}`).join(', '));
  }
}
const text = lines.join('\n');
process.stdout.write(text + '\n');
mkdirSync('bench/results', { recursive: true });
writeFileSync(`bench/results/ckd-${a.tag}.json`, JSON.stringify({ tag: a.tag, extra, results }, null, 2));
writeFileSync(`bench/results/ckd-${a.tag}.md`, text + '\n');
