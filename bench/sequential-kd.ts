/**
 * bench:sequential-kd — multimodal distillation into the sequential student (issue 20): plain
 * SASRec vs KDSR vs ODMT (its served ID branch) on the same data and budget, several seeds, then
 * the ablations (one seed): best-by-validation test R@10/N@10/R@20/N@20 (mean ± std over seeds),
 * seconds per training epoch, and the per-user paired comparison of each distilled run against
 * the plain run of the same seed (bench/paired-users.py on `dump --split test` vectors: the mean
 * paired difference of per-user Recall@10 and NDCG@10 and its standard error). For ODMT also its
 * ensemble of branches (`dump --branch ensemble`: the mean of the ID, text and image branches'
 * scores, which is what the ODMT code's evaluation reports), on test against the same plain runs:
 * not served (it would take all three encoders per request), reported to show what the served
 * ID branch leaves behind.
 *
 *   npm run bench:sequential-kd -- [--data ../shared/data/scientific] [--seeds 2024,2025,2026]
 *       [--epochs 20] [--eval-every 2] [--patience 3] [--jobs 1] [--no-ablations] [--summarize]
 *
 * Each run's result is written to bench/out/sequential-kd/runs/<job>.json as soon as it ends, and
 * a finished job is not rerun (so a killed benchmark resumes); --summarize only aggregates what
 * is there. Results: bench/results/sequential-kd-<date>.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: '../shared/data/scientific' },
    seeds: { type: 'string', default: '2024,2025,2026' },
    epochs: { type: 'string', default: '20' },
    'eval-every': { type: 'string', default: '2' },
    patience: { type: 'string', default: '3' },
    dim: { type: 'string', default: '64' },
    jobs: { type: 'string', default: '1' },
    'no-ablations': { type: 'boolean', default: false },
    summarize: { type: 'boolean', default: false },
    /** run only these variants (comma-separated, e.g. odmt), with this suffix on their job ids (another budget) */
    only: { type: 'string' },
    suffix: { type: 'string', default: '' },
    python: { type: 'string', default: '/usr/bin/python3' },
    yardstick: { type: 'string', default: '../shared/yardstick' },
  },
});
const data = resolve(a.data!);
const seeds = a.seeds!.split(',').map(Number);
const out = resolve('bench/out/sequential-kd');
const repo = join(out, 'models');
const runsDir = join(out, 'runs');
mkdirSync(runsDir, { recursive: true });
const cli = resolve('dist/cli/promptmm.js');
const KEYS = ['recall@10', 'ndcg@10', 'recall@20', 'ndcg@20'];

interface Job {
  id: string;
  method: 'plain' | 'kdsr' | 'odmt';
  variant: string;
  seed: number;
  flags: string[];
}
const jobs: Job[] = [];
const main = (m: Job['method'], seed: number): Job => ({ id: `${m}-${seed}`, method: m, variant: m, seed, flags: m === 'plain' ? [] : ['--seq-kd', m] });
// the main comparison first, seed by seed, so that a cut-short benchmark still pairs its runs
for (const s of seeds) for (const m of ['plain', 'kdsr', 'odmt'] as const) jobs.push(main(m, s));
const ABLATIONS: [Job['method'], string, string[]][] = [
  ['kdsr', 'kdsr --no-holistic', ['--no-holistic']],
  ['kdsr', 'kdsr --no-dissected', ['--no-dissected']],
  ['kdsr', 'kdsr --no-async', ['--no-async']],
  // (until 2026-12-03 the default was soft and this ablation `--kdsr-match hard`)
  ['kdsr', 'kdsr --kdsr-match soft', ['--kdsr-match', 'soft']],
  ['odmt', 'odmt --no-imt-mask', ['--no-imt-mask']],
  ['odmt', 'odmt --no-online-kd', ['--no-online-kd']],
  // (until 2026-12-03 the default was random and this ablation `--odmt-init features`)
  ['odmt', 'odmt --odmt-init random', ['--odmt-init', 'random']],
  // a second stage: a fresh ID-only student distilled from the ensemble of an ODMT run without online KD (the better ensemble on validation)
  ['odmt', 'odmt distilled', ['--odmt-student', 'distilled', '--no-online-kd']],
  ['odmt', 'odmt distilled from branch', ['--odmt-student', 'distilled', '--no-online-kd', '--odmt-distill-start', 'branch']],
];
if (!a['no-ablations']) {
  for (const [m, v, f] of ABLATIONS) jobs.push({ id: `${v.replace(/[^a-z0-9]+/g, '_')}-${seeds[0]}`, method: m, variant: v, seed: seeds[0], flags: ['--seq-kd', m, ...f] });
}
if (a.only) {
  const keep = new Set(a.only.split(','));
  jobs.splice(0, jobs.length, ...jobs.filter((j) => keep.has(j.variant)));
}
/** A variant's name under a budget (--suffix) and back: `odmt` with `-conv` is `odmt (conv)`. */
const withBudget = (variant: string, suffix: string): string => (suffix ? `${variant} (${suffix.replace(/^-/, '')})` : variant);
const budgetOf = (variant: string): string => {
  const m = / \(([^)]*)\)$/.exec(variant);
  return m ? `-${m[1]}` : '';
};
for (const j of jobs) {
  j.id += a.suffix;
  j.variant = withBudget(j.variant, a.suffix!);
}

interface RunResult {
  job: Job;
  bestEpoch: number;
  epochsRun: number;
  endedOn: string;
  secondsPerEpoch: number;
  wallSeconds: number;
  val: Record<string, number>;
  test: Record<string, number>;
  odmtValidation?: Record<string, Record<string, number>>;
  dump: string;
  loadavg: [string, string];
  settings: { epochs: string; evalEvery: string; patience: string };
}

function runJob(job: Job): Promise<void> {
  const file = join(runsDir, `${job.id}.json`);
  if (existsSync(file)) return Promise.resolve();
  const load0 = readFileSync('/proc/loadavg', 'utf8').trim();
  const t = performance.now();
  const args = [cli, 'train', '--data', data, '--name', job.id, '--repo', repo, '--model', 'sasrec', '--dim', a.dim!, '--seed', String(job.seed), '--epochs', a.epochs!, '--eval-every', a['eval-every']!, '--patience', a.patience!, '--no-progress', ...job.flags];
  process.stderr.write(`start ${job.id}: ${job.flags.join(' ')} (load ${load0})\n`);
  return new Promise((done, fail) => {
    const p = spawn('node', args, { env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr = (stderr + b).slice(-4000)));
    p.on('close', (code) => {
      if (code !== 0) return fail(new Error(`${job.id} failed (${code}):\n${stderr}`));
      const s = JSON.parse(stdout.trim().split('\n').pop()!).student;
      const dump = join(out, 'dumps', job.id);
      const d = spawnSync('node', [cli, 'dump', '--name', job.id, '--repo', repo, '--split', 'test', '--out', dump], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' } });
      if (d.status !== 0) return fail(new Error(`dump ${job.id} failed:\n${d.stderr}`));
      if (job.method === 'odmt') {
        const why = dumpEnsemble(job.id, dump);
        if (why) return fail(new Error(why));
      }
      const r: RunResult = {
        job,
        bestEpoch: s.bestEpoch,
        epochsRun: s.epochsRun,
        endedOn: s.endedOn,
        secondsPerEpoch: s.secondsPerEpoch,
        wallSeconds: (performance.now() - t) / 1000,
        val: s.val,
        test: s.test,
        odmtValidation: s.odmtValidation,
        dump,
        loadavg: [load0, readFileSync('/proc/loadavg', 'utf8').trim()],
        settings: { epochs: a.epochs!, evalEvery: a['eval-every']!, patience: a.patience! },
      };
      writeFileAtomic(file, Buffer.from(JSON.stringify(r, null, 1)));
      process.stderr.write(`done ${job.id}: test ndcg@10 ${s.test['ndcg@10'].toFixed(4)}, ${s.secondsPerEpoch.toFixed(1)} s/epoch, best epoch ${s.bestEpoch}/${s.epochsRun}\n`);
      done();
    });
  });
}

/**
 * ODMT's ensemble of branches (what the ODMT code reports: the mean of the three branches' scores),
 * dumped from the run's checkpoint beside its served ID branch's dump; null when written.
 */
function dumpEnsemble(id: string, dump: string): string | null {
  const d = spawnSync('node', [cli, 'dump', '--name', id, '--repo', repo, '--split', 'test', '--branch', 'ensemble', '--out', `${dump}-ensemble`], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' } });
  return d.status === 0 ? null : `dump --branch ensemble ${id} failed:\n${d.stderr}`;
}

async function runAll(): Promise<void> {
  const queue = [...jobs];
  const worker = async () => {
    for (let j = queue.shift(); j; j = queue.shift()) await runJob(j);
  };
  await Promise.all(Array.from({ length: Math.max(1, Number(a.jobs)) }, worker));
}

/**
 * paired-users.py's test line at cut-off k: the per-user differences (a − b) of Recall@k and
 * NDCG@k with their standard errors, and a's own means.
 */
function paired(dumpA: string, dumpB: string, k = 10): { recall: [number, number]; ndcg: [number, number]; line: string; a: { recall: number; ndcg: number } } {
  const r = spawnSync(a.python!, [resolve('bench/paired-users.py'), dumpA, dumpB, '--data', data, '--yardstick', resolve(a.yardstick!), '--k', String(k)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`paired-users.py failed:\n${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('test'))!;
  const m = new RegExp(`R@${k} ([\\d.]+) vs [\\d.]+, diff ([+-][\\d.]+) ± ([\\d.]+).*N@${k} ([\\d.]+) vs [\\d.]+, diff ([+-][\\d.]+) ± ([\\d.]+)`).exec(line);
  if (!m) throw new Error(`cannot read paired-users.py's test line: ${line}`);
  return { recall: [Number(m[2]), Number(m[3])], ndcg: [Number(m[5]), Number(m[6])], line, a: { recall: Number(m[1]), ndcg: Number(m[4]) } };
}

/** One seed's paired N@10 (with its SE count) and R@10 differences, as the summary prints them. */
const pairedText = (p: { seed: number; ndcg: [number, number]; recall: [number, number] }): string =>
  `s${p.seed}: ${p.ndcg[0] >= 0 ? '+' : ''}${p.ndcg[0].toFixed(4)}±${p.ndcg[1].toFixed(4)} (${(p.ndcg[0] / p.ndcg[1]).toFixed(1)} SE); ${p.recall[0].toFixed(4)}±${p.recall[1].toFixed(4)}`;

const meanStd = (xs: number[]) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd, n: xs.length };
};

function summarize(): void {
  const results: RunResult[] = readdirSync(runsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(runsDir, f), 'utf8')) as RunResult);
  const byVariant = new Map<string, RunResult[]>();
  for (const r of results) byVariant.set(r.job.variant, [...(byVariant.get(r.job.variant) ?? []), r].sort((x, y) => x.job.seed - y.job.seed));
  // each variant is paired with the plain runs of its own budget (the same --suffix)
  const plainOf = (variant: string): Map<number, RunResult> => new Map((byVariant.get(withBudget('plain', budgetOf(variant))) ?? []).map((r) => [r.job.seed, r]));
  const table: Record<string, unknown> = {};
  console.log(`\ntest metrics on ${data}, dim ${a.dim}, --epochs ${a.epochs} --eval-every ${a['eval-every']} --patience ${a.patience} (mean ± std over seeds)`);
  console.log(`variant                    seeds  ${KEYS.map((k) => k.padEnd(17)).join('')}s/epoch   paired vs plain (same seed), test N@10 diff ± SE; R@10`);
  for (const [variant, rs] of byVariant) {
    const metrics = Object.fromEntries(KEYS.map((k) => [k, meanStd(rs.map((r) => r.test[k]))]));
    const spe = meanStd(rs.map((r) => r.secondsPerEpoch));
    const plainBySeed = plainOf(variant);
    const pairs = rs[0].job.method === 'plain' ? [] : rs.filter((r) => plainBySeed.has(r.job.seed)).map((r) => ({ seed: r.job.seed, ...paired(r.dump, plainBySeed.get(r.job.seed)!.dump) }));
    // against the plain runs of the same seeds (a one-seed variant is not set against a three-seed mean)
    const samePlain = rs.filter((r) => plainBySeed.has(r.job.seed)).map((r) => plainBySeed.get(r.job.seed)!.test['ndcg@10']);
    const rel = samePlain.length ? meanStd(rs.filter((r) => plainBySeed.has(r.job.seed)).map((r) => r.test['ndcg@10'])).mean / meanStd(samePlain).mean - 1 : NaN;
    table[variant] = { settings: rs[0].settings, seeds: rs.map((r) => r.job.seed), test: metrics, secondsPerEpoch: spe, ndcg10VsPlain: rel, paired: pairs, runs: rs.map((r) => ({ seed: r.job.seed, bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, endedOn: r.endedOn, val: r.val, test: r.test, secondsPerEpoch: r.secondsPerEpoch, wallSeconds: r.wallSeconds, loadavg: r.loadavg, odmtValidation: r.odmtValidation })) };
    const cells = KEYS.map((k) => `${metrics[k].mean.toFixed(4)}±${metrics[k].std.toFixed(4)}`.padEnd(17)).join('');
    const pr = pairs.map(pairedText).join(' | ');
    console.log(`${variant.padEnd(26)} ${String(rs.length).padEnd(6)} ${cells}${spe.mean.toFixed(1).padEnd(9)} ${variant === 'plain' ? '' : `N@10 ${(rel * 100).toFixed(1)}% vs plain; ${pr}`}`);
  }
  // ODMT's ensemble (not served: it would take all three encoders per request), on test against the same plain runs
  for (const [variant, rs] of byVariant) {
    if (rs[0].job.method !== 'odmt') continue;
    const plainBySeed = plainOf(variant);
    const runs = rs.filter((r) => plainBySeed.has(r.job.seed));
    const rows = runs.map((r) => {
      if (!existsSync(`${r.dump}-ensemble`)) {
        const why = dumpEnsemble(r.job.id, r.dump);
        if (why) throw new Error(why);
      }
      const plainDump = plainBySeed.get(r.job.seed)!.dump;
      return { seed: r.job.seed, at10: paired(`${r.dump}-ensemble`, plainDump, 10), at20: paired(`${r.dump}-ensemble`, plainDump, 20) };
    });
    if (!rows.length) continue;
    const test = { 'recall@10': meanStd(rows.map((x) => x.at10.a.recall)), 'ndcg@10': meanStd(rows.map((x) => x.at10.a.ndcg)), 'recall@20': meanStd(rows.map((x) => x.at20.a.recall)), 'ndcg@20': meanStd(rows.map((x) => x.at20.a.ndcg)) };
    const rel = test['ndcg@10'].mean / meanStd(runs.map((r) => plainBySeed.get(r.job.seed)!.test['ndcg@10'])).mean - 1;
    const name = `${variant} [ensemble, not served]`;
    table[name] = { seeds: rows.map((x) => x.seed), test, ndcg10VsPlain: rel, paired: rows.map((x) => ({ seed: x.seed, recall: x.at10.recall, ndcg: x.at10.ndcg, line: x.at10.line })) };
    const pr = rows.map((x) => pairedText({ seed: x.seed, ...x.at10 })).join(' | ');
    console.log(`${name.padEnd(26)} ${String(rows.length).padEnd(6)} ${KEYS.map((k) => `${test[k as keyof typeof test].mean.toFixed(4)}±${test[k as keyof typeof test].std.toFixed(4)}`.padEnd(17)).join('')}${'-'.padEnd(9)} N@10 ${(rel * 100).toFixed(1)}% vs plain; ${pr}`);
  }
  for (const r of results) {
    if (!r.odmtValidation) continue;
    console.log(`\n${r.job.id}: validation at the end (best epoch), per branch: ${Object.entries(r.odmtValidation).map(([b, m]) => `${b} N@10 ${m['ndcg@10'].toFixed(4)} R@10 ${m['recall@10'].toFixed(4)}`).join('; ')}`);
  }
  const report = { data, date: new Date().toISOString(), settings: { dim: a.dim, epochs: a.epochs, evalEvery: a['eval-every'], patience: a.patience, jobs: a.jobs }, loadavgEnd: readFileSync('/proc/loadavg', 'utf8').trim(), variants: table };
  const day = new Date().toISOString().slice(0, 10);
  const resultFile = resolve('bench/results', `sequential-kd-${day}.json`);
  writeFileAtomic(resultFile, Buffer.from(JSON.stringify(report, null, 2)));
  console.log(`\nload average at the end: ${report.loadavgEnd}\nresults: ${resultFile}`);
}

if (!a.summarize) await runAll();
summarize();
