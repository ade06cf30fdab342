/**
 * npm run loadtest — autocannon scenarios against a promptmm server on loopback: starts one on
 * the newest bundle of --name (or targets --url), always measures the /healthz baseline in the
 * same run, then each scenario; prints a table, writes JSON and SVG reports to
 * loadtest/reports/ (with a started server's whole log beside them, and in the table the
 * fine-tuning rounds that overlapped each run), and fails (exit 1) on any error or non-2xx response.
 *
 *   npm run loadtest -- [--scenario baseline|recommend|exact|mixed|cold|all[,…]] [--connections 50]
 *                       [--duration 20] [--repeat N] [--name NAME | --url http://127.0.0.1:PORT --name NAME] [--repo models]
 *
 * With --repeat N (N ≥ 2) each scenario runs N times, each run right after a /healthz baseline
 * run of its own, and the table gives each scenario's median ratio to its paired baselines with
 * the range: on a shared machine the speed drifts from minute to minute, and a ratio within one
 * pair is what stays comparable.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EventEmitter } from 'node:events';
import autocannon from 'autocannon';
import { attributeRounds, latencySvg, repeatTable, summarize, table, type RepeatSummary, type ScenarioResult } from './report.js';
import { listVersions, versionDir } from '../repository/versions.js';
import { spawnServer } from './spawn-server.js';
import { loadTraffic, planRequests, SCENARIOS, type Scenario, type Traffic } from './traffic.js';
import { scriptArgs } from '../core/script-args.js';

const HELP = `usage: npm run loadtest -- [options]
  --scenario LIST     baseline, recommend, exact, mixed, cold or all (comma-separated; default recommend).
                      The /healthz baseline always runs first, in the same run.
  --connections N     concurrent connections (default 50)
  --duration S        seconds per scenario (default 20), after a 2 s warm-up
  --repeat N          run each scenario N times, each right after a baseline run of its own, and
                      report the median ratio to those baselines and its range (default 1: one
                      baseline, then each scenario once)
  --name NAME         model whose newest bundle is served (and whose users are drawn)
  --repo DIR          model repository (default models, or PROMPTMM_REPO)
  --url URL           target a running server instead (loopback only); --name still names its model.
                      A started server runs on a scratch copy of the repository (the bundle linked,
                      a fresh interaction log); a --url server records mixed's interactions for real
  --token T           bearer token for POST /interactions (default PROMPTMM_TOKEN; generated for a started server)
  --out DIR           report folder (default loadtest/reports)
  --server-arg ARG    extra argument for the started server (repeatable), e.g. --server-arg=--ef=200
`;


export interface LoadtestOptions {
  scenarios: Scenario[];
  connections: number;
  duration: number;
  warmup: number;
  /** Rounds of (baseline, scenario) pairs; 1 (default): one baseline, then each scenario once. */
  repeat?: number;
  name: string;
  repo: string;
  url?: string;
  token?: string;
  out: string;
  serverArgs: string[];
  log?: (line: string) => void;
}

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) {
    throw new Error(`--url ${url}: only loopback targets are accepted (127.0.0.1, localhost, ::1); load-testing other hosts is not this tool's job`);
  }
}

/**
 * Starts a server on a scratch repository holding only a link to the newest bundle: the mixed
 * scenario's synthetic interactions go to the scratch log, never into the model's own
 * interaction log (which the nightly retrain absorbs), and each run starts from the bundle alone.
 */
export async function startServer(o: LoadtestOptions, token: string, nodeArgs: string[] = [], logFile?: string): Promise<{ url: string; child: ChildProcess; scratch: string; logWritten: Promise<void> }> {
  const v = listVersions(o.repo, o.name).at(-1)!;
  const scratch = mkdtempSync(join(tmpdir(), 'promptmm-loadtest-'));
  mkdirSync(join(scratch, o.name));
  symlinkSync(resolve(versionDir(o.repo, o.name, v)), versionDir(scratch, o.name, v), 'dir');
  const s = spawnServer(['--name', o.name, '--repo', scratch, '--port', '0', '--poll-seconds', '0', ...o.serverArgs], { PROMPTMM_TOKEN: token, PROMPTMM_LOG_LEVEL: 'info' }, nodeArgs, logFile);
  try {
    return { url: await s.url, child: s.child, scratch, logWritten: s.logWritten };
  } catch (err) {
    rmSync(scratch, { recursive: true, force: true });
    throw err;
  }
}

export async function waitReady(url: string): Promise<unknown> {
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return r.json();
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}/readyz did not answer 200 within 60 s`);
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export async function runScenario(url: string, s: Scenario, t: Traffic, o: LoadtestOptions, token: string, seconds: number): Promise<ScenarioResult> {
  const plan = planRequests(s, t, 50_000, SCENARIOS.indexOf(s) + 1);
  let next = 0;
  const latencies: number[] = [];
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const instance = autocannon({
    url,
    connections: o.connections,
    duration: seconds,
    requests: [
      {
        setupRequest: (req) => {
          const p = plan[next++ % plan.length];
          return { ...req, method: p.method, path: p.path, body: p.body, headers: p.body ? headers : {} };
        },
      },
    ],
  }) as unknown as Promise<autocannon.Result> & EventEmitter;
  // autocannon's own histogram has 1 ms resolution; keep every response time (ms, float) instead.
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  const startedAt = Date.now();
  const r = await instance;
  const endedAt = Date.now();
  const sorted = Float64Array.from(latencies).sort();
  const pcts = [0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 99.999];
  return {
    scenario: s,
    requests: r.requests.total,
    seconds: r.duration,
    rps: r.requests.total / r.duration,
    latencyMs: {
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? NaN,
      mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    },
    distribution: pcts.map((p) => ({ percentile: p, ms: +quantile(sorted, p / 100).toFixed(3) })),
    errors: r.errors - r.timeouts,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    ratioToBaseline: null,
    loadavg: loadavg()[0],
    window: [startedAt, endedAt],
  };
}

export interface LoadtestReport {
  date: string;
  target: string;
  name: string;
  model: unknown;
  connections: number;
  durationSeconds: number;
  note: string;
  results: ScenarioResult[];
  /** Per scenario over the rounds (one run each without --repeat). */
  summary: RepeatSummary[];
  repeat: number;
  failed: boolean;
  /** serverLog: the started server's whole log (none for a --url target) */
  files: { json: string; svg: string; serverLog?: string };
}

export async function loadtest(o: LoadtestOptions): Promise<LoadtestReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const t = loadTraffic(o.repo, o.name);
  const token = o.token ?? process.env.PROMPTMM_TOKEN ?? randomBytes(16).toString('hex');
  let child: ChildProcess | null = null;
  let scratch: string | null = null;
  let logWritten: Promise<void> = Promise.resolve();
  let url = o.url;
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const files: LoadtestReport['files'] = { json: join(o.out, `${o.name}-${stamp}.json`), svg: join(o.out, `${o.name}-${stamp}.svg`) };
  const stop = async () => {
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    child = null;
    await logWritten;
  };
  if (url) assertLoopback(url);
  else {
    files.serverLog = join(o.out, `${o.name}-${stamp}.server.jsonl`);
    const s = await startServer(o, token, [], files.serverLog);
    ({ child, url, scratch, logWritten } = s);
  }
  try {
    const model = await waitReady(url);
    const scenarios = o.scenarios.filter((s) => s !== 'baseline');
    const repeat = o.repeat ?? 1;
    const results: ScenarioResult[] = [];
    const measure = async (s: Scenario, round?: string) => {
      log(`[loadtest] ${s}${round ?? ''}: ${o.warmup} s warm-up, ${o.duration} s measured, ${o.connections} connections`);
      if (o.warmup > 0) await runScenario(url, s, t, o, token, o.warmup);
      return runScenario(url, s, t, o, token, o.duration);
    };
    if (repeat === 1) {
      for (const s of ['baseline' as const, ...scenarios]) results.push(await measure(s));
      for (const r of results) r.ratioToBaseline = r.rps / results[0].rps;
    } else {
      // Pairs, alternating: a scenario's ratio is to the baseline measured just before it.
      for (let round = 1; round <= repeat; round++) {
        for (const s of scenarios.length ? scenarios : ['baseline' as const]) {
          const tag = ` (round ${round}/${repeat})`;
          const base = { ...(await measure('baseline', tag)), round, ratioToBaseline: 1 };
          results.push(base);
          if (s === 'baseline') continue;
          const r = await measure(s, tag);
          results.push({ ...r, round, ratioToBaseline: r.rps / base.rps });
        }
      }
    }
    // The server's fine-tuning rounds that overlapped each run (a round can take a core for
    // seconds on a large catalog): read from its whole log once it has exited.
    if (files.serverLog) {
      await stop();
      attributeRounds(results, readFileSync(files.serverLog, 'utf8'));
    }
    const failed = results.some((r) => r.errors + r.timeouts + r.non2xx > 0);
    const report: LoadtestReport = {
      date: new Date().toISOString(),
      target: url,
      name: o.name,
      model: (model as { model?: unknown }).model,
      connections: o.connections,
      durationSeconds: o.duration,
      note: 'server and autocannon on the same machine (loopback), sharing its cores',
      results,
      summary: summarize(results),
      repeat,
      failed,
      files,
    };
    writeFileSync(files.json, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(files.svg, await latencySvg(results, `promptmm ${o.name}: latency by percentile, ${o.connections} connections`));
    return report;
  } finally {
    await stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

function repeatCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error(`--repeat must be a whole number from 1 to 100, got "${v}"`);
  return n;
}

function parseScenarios(v: string): Scenario[] {
  const list = v === 'all' ? [...SCENARIOS] : v.split(',').map((s) => s.trim());
  for (const s of list) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--scenario: unknown scenario "${s}" (${SCENARIOS.join(', ')}, all)`);
  return list as Scenario[];
}

async function main(): Promise<void> {
  const { values: a } = scriptArgs(import.meta.url, {
    options: {
      scenario: { type: 'string', default: 'recommend' },
      connections: { type: 'string', default: '50' },
      duration: { type: 'string', default: '20' },
      repeat: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '2' },
      name: { type: 'string' },
      repo: { type: 'string', default: process.env.PROMPTMM_REPO ?? 'models' },
      url: { type: 'string' },
      token: { type: 'string' },
      out: { type: 'string', default: 'loadtest/reports' },
      'server-arg': { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!a.name) throw new Error('--name is required (the model whose users the traffic is drawn from)\n' + HELP);
  const num = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag} must be a number ≥ ${min}, got "${v}"`);
    return n;
  };
  const report = await loadtest({
    scenarios: parseScenarios(a.scenario!),
    connections: num('connections', a.connections!, 1),
    duration: num('duration', a.duration!, 1),
    warmup: num('warmup', a.warmup!, 0),
    repeat: repeatCount(a.repeat!),
    name: a.name,
    repo: a.repo!,
    url: a.url,
    token: a.token,
    out: a.out!,
    serverArgs: a['server-arg']!,
  });
  const medians = report.repeat > 1 ? `\nover ${report.repeat} rounds (each scenario's ratio to the baseline run just before it):\n${repeatTable(report.summary)}` : '';
  process.stdout.write(`\npromptmm ${report.name} via ${report.target} (${report.note})\n${table(report.results)}${medians}\nreports: ${report.files.json}, ${report.files.svg}${report.files.serverLog ? `, server log ${report.files.serverLog}` : ''}\n`);
  if (report.failed) {
    process.stderr.write('loadtest FAILED: errors or non-2xx responses (see the table)\n');
    process.exitCode = 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`loadtest: error: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
