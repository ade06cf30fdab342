/**
 * npm run chaos — a reproducible fault run against real `promptmm serve` processes on loopback:
 * kill -9 under writers, log damage, corrupted bundles, slow clients, SIGTERM under load; one table.
 *
 *   npm run chaos -- [--trials N] [--seed S] [--json FILE] [--only kill9,log,bundles,slow,sigterm]
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleScenario } from './chaos/bundles.js';
import { chaosTable, Resources, serverFeatures, type ChaosRow, type ServerFeatures } from './chaos/common.js';
import { kill9Scenario } from './chaos/kill9.js';
import { logDamageScenario } from './chaos/log-damage.js';
import { sigtermScenario } from './chaos/sigterm.js';
import { slowClientScenario } from './chaos/slow-clients.js';
import { scriptArgs } from '../core/script-args.js';

export const SCENARIOS = ['kill9', 'log', 'bundles', 'slow', 'sigterm'] as const;
export type ChaosScenario = (typeof SCENARIOS)[number];

const HELP = `usage: npm run chaos -- [options]
  --trials N         kill -9 trials (default 100); the other scenarios scale from it:
                     log damage ceil(N/20) trials of each kind, corrupted bundles ceil(N/50)
                     rounds of every kind, SIGTERM ceil(N/20) runs
  --seed S           seed of every random choice (default 1); timing still varies run to run
  --json FILE        also write the report as JSON
  --only LIST        some of ${SCENARIOS.join(',')} (default all)
  --slow-sockets N   sockets of each slow-client kind (default 8)
  --slow-bound S     seconds to hold them against a server without timeout flags (default 10;
                     with the flags the bound is twice the 2 s timeouts given, plus 1 s)
Prints one table; exits 1 if any check failed. Servers run on temporary copies of tiny
synthetic bundles, on 127.0.0.1 only; everything started is killed and removed at the end.
`;

export interface ChaosOptions {
  trials: number;
  seed: number;
  only?: ChaosScenario[];
  /** log-damage trials (default ceil(trials/20)) */
  logTrials?: number;
  /** rounds over every bundle corruption (default ceil(trials/50)) */
  bundleRounds?: number;
  slowSockets?: number;
  /** seconds to hold slow sockets against a server without timeout flags (default 10) */
  slowBoundWithoutFlags?: number;
  sigtermRuns?: number;
  /** SIGTERM load: batches in flight, users per batch, k, keep-alive GETs */
  sigterm?: { batches?: number; users?: number; k?: number; gets?: number };
  log?: (line: string) => void;
  /**
   * Run the scenarios at the same time (the test suite's short run, to save wall time). Their
   * timings then disturb each other (a slow-client bound, the moment of a SIGTERM), so the
   * measured run keeps them one after another.
   */
  concurrent?: boolean;
  /** on SIGINT/SIGTERM during the run: kill the servers, remove the folders, exit 130 (the command line sets it) */
  cleanUpOnSignal?: boolean;
}

export interface ChaosReport {
  tool: 'promptmm chaos';
  date: string;
  node: string;
  seed: number;
  trials: number;
  /** the hardening flags found in `serve --help` */
  features: ServerFeatures;
  wallSeconds: number;
  /** wall time of each scenario that ran */
  seconds: Partial<Record<ChaosScenario, number>>;
  rows: ChaosRow[];
  pass: boolean;
  /** server processes and temporary folders still there after the cleanup (0 unless it failed) */
  leftoverProcesses: number;
  leftoverDirs: number;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const only = new Set(o.only ?? SCENARIOS);
  const t0 = performance.now();
  const features = serverFeatures();
  log(`[chaos] serve flags: timeouts ${features.timeouts.map((f) => f.flag).join(',') || 'none'}; keep-alive ${features.keepAlive?.flag ?? 'none'}; drain ${features.drain?.flag ?? 'none'}; connection cap ${features.connectionCap ?? 'none'}; log skip ${features.logSkip ?? 'none'}`);
  const res = new Resources();
  const rows: ChaosRow[] = [];
  const scaled = (per: number) => Math.max(1, Math.ceil(o.trials / per));
  const onSignal = () => void res.cleanup().finally(() => process.exit(130));
  if (o.cleanUpOnSignal) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  const seconds: Partial<Record<ChaosScenario, number>> = {};
  const byScenario = new Map<ChaosScenario, ChaosRow[]>();
  const timed = async (name: ChaosScenario, what: string, run: () => Promise<ChaosRow | ChaosRow[]>) => {
    if (!only.has(name)) return;
    log(`[chaos] ${what}`);
    const t = performance.now();
    const out = await run();
    byScenario.set(name, Array.isArray(out) ? out : [out]);
    seconds[name] = Math.round((performance.now() - t) / 100) / 10;
  };
  const runs: [ChaosScenario, string, () => Promise<ChaosRow | ChaosRow[]>][] = [
    ['kill9', `kill -9: ${o.trials} trials, 4 writers`, () => kill9Scenario(res, { trials: o.trials, seed: o.seed })],
    ['log', 'interaction-log damage', () => logDamageScenario(res, { trials: o.logTrials ?? scaled(20), seed: o.seed, features })],
    ['bundles', 'corrupted bundles', () => bundleScenario(res, { rounds: o.bundleRounds ?? scaled(50), seed: o.seed })],
    ['slow', 'slow clients', () => slowClientScenario(res, { sockets: o.slowSockets ?? 8, features, boundWithoutFlags: o.slowBoundWithoutFlags })],
    ['sigterm', 'SIGTERM under load', () => sigtermScenario(res, { runs: o.sigtermRuns ?? scaled(20), seed: o.seed, features, ...o.sigterm })],
  ];
  try {
    if (o.concurrent) await Promise.all(runs.map((r) => timed(...r)));
    else for (const r of runs) await timed(...r);
    for (const name of SCENARIOS) rows.push(...(byScenario.get(name) ?? []));
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, onSignal);
    await res.cleanup();
  }
  return {
    tool: 'promptmm chaos',
    date: new Date().toISOString(),
    node: process.version,
    seed: o.seed,
    trials: o.trials,
    features,
    wallSeconds: Math.round((performance.now() - t0) / 100) / 10,
    seconds,
    rows,
    pass: rows.every((r) => r.pass) && res.running === 0 && res.leftoverDirs() === 0,
    leftoverProcesses: res.running,
    leftoverDirs: res.leftoverDirs(),
  };
}

/** The report for a terminal: what ran, the table, then what failed. */
export function formatReport(rep: ChaosReport): string {
  const each = Object.entries(rep.seconds).map(([k, v]) => `${k} ${v} s`).join(', ');
  const lines = [`promptmm chaos: seed ${rep.seed}, ${rep.trials} kill -9 trials, node ${rep.node}, ${rep.wallSeconds} s (${each})`, '', chaosTable(rep.rows)];
  const failed = rep.rows.filter((r) => !r.pass);
  if (failed.length) {
    lines.push('failed checks (first lines of each):');
    for (const r of failed) for (const p of r.problems.slice(0, 3)) lines.push(`  ${r.scenario}: ${p}`);
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values: a } = scriptArgs(import.meta.url, {
    options: {
      trials: { type: 'string', default: '100' },
      seed: { type: 'string', default: '1' },
      json: { type: 'string' },
      only: { type: 'string' },
      'slow-sockets': { type: 'string', default: '8' },
      'slow-bound': { type: 'string', default: '10' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) {
    process.stdout.write(HELP);
    return;
  }
  const int = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
  const only = a.only?.split(',').map((x) => x.trim());
  for (const x of only ?? []) if (!(SCENARIOS as readonly string[]).includes(x)) throw new Error(`--only: unknown scenario "${x}" (${SCENARIOS.join(', ')})`);
  const rep = await runChaos({ trials: int('trials', a.trials!, 1), seed: int('seed', a.seed!, 0), only: only as ChaosScenario[] | undefined, slowSockets: int('slow-sockets', a['slow-sockets']!, 1), slowBoundWithoutFlags: int('slow-bound', a['slow-bound']!, 1), cleanUpOnSignal: true });
  process.stdout.write(formatReport(rep));
  if (a.json) writeFileSync(a.json, JSON.stringify(rep, null, 2) + '\n');
  if (!rep.pass) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`chaos: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
