/**
 * bench:serve-profile — where a request's time goes: starts a server (node --cpu-prof) on the
 * newest bundle of --name, runs one load-test scenario against it, and charges the server's CPU
 * samples of the measured window to cost categories (bench/cpu-profile.ts), per request. Writes
 * the split (JSON) and a flame graph (SVG) to bench/results/.
 *
 *   npm run bench:serve-profile -- --name NAME [--repo models] [--scenario recommend] [--duration 10]
 *                                  [--connections 50] [--label before] [--server-arg=--flag=value]
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flameGraphSvg, perRequest, splitProfile, type CpuProfile } from './cpu-profile.js';
import { runScenario, startServer, waitReady, type LoadtestOptions } from '../loadtest/run.js';
import { loadTraffic, SCENARIOS, type Scenario } from '../loadtest/traffic.js';
import { scriptArgs } from '../core/script-args.js';

const HELP = `usage: npm run bench:serve-profile -- --name NAME [options]
  --name NAME         model whose newest bundle is served
  --repo DIR          model repository (default models, or PROMPTMM_REPO)
  --scenario S        one of ${SCENARIOS.join(', ')} (default recommend)
  --duration S        measured seconds (default 10), after a 2 s warm-up
  --connections N     concurrent connections (default 50)
  --label L           added to the result files' names (e.g. before, after)
  --out DIR           result folder (default bench/results)
  --server-arg ARG    extra argument for the server (repeatable)
  --keep-cpuprofile   also keep the raw .cpuprofile (Chrome DevTools, speedscope) beside the results
`;

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string' },
    repo: { type: 'string', default: process.env.PROMPTMM_REPO ?? 'models' },
    scenario: { type: 'string', default: 'recommend' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    label: { type: 'string', default: '' },
    out: { type: 'string', default: 'bench/results' },
    'server-arg': { type: 'string', multiple: true, default: [] },
    'keep-cpuprofile': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (!a.name) throw new Error('--name is required\n' + HELP);
if (!(SCENARIOS as readonly string[]).includes(a.scenario!)) throw new Error(`--scenario: unknown scenario "${a.scenario}" (${SCENARIOS.join(', ')})`);
const scenario = a.scenario as Scenario;
const positive = (flag: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got "${v}"`);
  return n;
};
const o: LoadtestOptions = {
  scenarios: [scenario],
  connections: positive('connections', a.connections!),
  duration: positive('duration', a.duration!),
  warmup: 2,
  name: a.name,
  repo: a.repo!,
  out: a.out!,
  serverArgs: a['server-arg']!,
};

const profDir = mkdtempSync(join(tmpdir(), 'promptmm-cpuprof-'));
const token = 'serve-profile';
const traffic = loadTraffic(o.repo, o.name);
const server = await startServer(o, token, ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
let result;
let window: [number, number];
try {
  await waitReady(server.url);
  process.stderr.write(`[serve-profile] ${scenario}: 2 s warm-up, ${o.duration} s measured, ${o.connections} connections\n`);
  await runScenario(server.url, scenario, traffic, o, token, o.warmup);
  // The profile's timestamps are on the monotonic clock in µs, as process.hrtime's (Linux).
  const from = Number(process.hrtime.bigint() / 1000n);
  result = await runScenario(server.url, scenario, traffic, o, token, o.duration);
  window = [from, Number(process.hrtime.bigint() / 1000n)];
} finally {
  const exited = new Promise((r) => server.child.on('exit', r));
  server.child.kill('SIGTERM'); // the profile is written as the server exits
  await exited;
  rmSync(server.scratch, { recursive: true, force: true });
}
const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error(`the server wrote no .cpuprofile to ${profDir}`);
const rawProfile = readFileSync(join(profDir, file), 'utf8');
const profile = JSON.parse(rawProfile) as CpuProfile;
rmSync(profDir, { recursive: true, force: true });

const split = splitProfile(profile, window[0], window[1]);
const costs = perRequest(split, result.requests);
const busyUs = costs.reduce((s, c) => s + c.us, 0);
const date = new Date().toISOString();
const base = `serve-profile-${o.name}-${scenario}-${date.slice(0, 10)}${a.label ? `-${a.label}` : ''}`;
mkdirSync(o.out, { recursive: true });
const summary = {
  date,
  name: o.name,
  scenario,
  connections: o.connections,
  durationSeconds: o.duration,
  loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
  requests: result.requests,
  rps: +result.rps.toFixed(0),
  latencyMs: result.latencyMs,
  windowMs: +split.totalMs.toFixed(0),
  idleShare: +((split.ms.idle ?? 0) / Math.max(split.totalMs, 1e-9)).toFixed(3),
  busyUsPerRequest: +busyUs.toFixed(1),
  perRequestUs: costs,
  note: 'server CPU samples (node --cpu-prof) of the measured window, per request; autocannon on the same cores',
};
writeFileSync(join(o.out, `${base}.json`), JSON.stringify(summary, null, 2) + '\n');
if (a['keep-cpuprofile']) writeFileSync(join(o.out, `${base}.cpuprofile`), rawProfile);
writeFileSync(join(o.out, `${base}.svg`), flameGraphSvg(split, `promptmm ${o.name} ${scenario}${a.label ? ` (${a.label})` : ''}: server CPU, ${result.requests} requests in ${o.duration} s, ${busyUs.toFixed(0)} µs busy per request`));
process.stdout.write(
  `${scenario}: ${summary.rps} req/s, p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms; server idle ${(100 * summary.idleShare).toFixed(0)}%, busy ${busyUs.toFixed(1)} µs per request (load ${summary.loadavg})\n` +
    costs.map((c) => `  ${c.category.padEnd(34)} ${c.us.toFixed(2).padStart(8)} µs  ${(100 * c.share).toFixed(1).padStart(5)}%`).join('\n') +
    `\nwrote ${join(o.out, base)}.{json,svg${a['keep-cpuprofile'] ? ',cpuprofile' : ''}}\n`,
);
