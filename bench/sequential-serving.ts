/**
 * bench:sequential-serving — serving a sequential (SASRec) bundle, issue 19's serving figures:
 *  - autocannon, 50 connections: GET /recommend req/s as a ratio to /healthz in the same run,
 *    p50/p99; once as served (result cache on: repeated users are answered from it) and once
 *    with --cache-users 0 (every answer runs the encoder);
 *  - the encoder alone (sequence.onnx through the server's SequenceEncoder): ms per batch of 1,
 *    32 and 256 random users' live sequences, as one run padded to the longest and as the
 *    server's micro-batcher runs them (one run per width class);
 *  - the fraction of --users random users whose top-10 changes right after one POST /interactions
 *    (a random unseen item), and the latency of that first answer next to a repeated (cached)
 *    and a first (uncached) answer before it (in-process requests, app.inject: no sockets).
 * Without --name it builds a scientific-sized bundle from a checkpoint with RANDOM weights (the
 * contract's shapes: dim 64, 2 blocks, 1 head, maxLen 50) on ../shared/data/scientific; with
 * --name it measures that model's newest exported bundle (a trained one). Prints a table and
 * writes bench/results/sequential-serving-<date>[-tag].json.
 *
 *   npm run bench:sequential-serving -- [--name NAME --repo models] [--data ../shared/data/scientific]
 *                                       [--duration 10] [--connections 50] [--users 100] [--tag T]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { loadDataset } from '../data/dataset.js';
import { exportBundle } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { loadtest } from '../loadtest/run.js';
import { Rng } from '../core/rng.js';
import { BUNDLE_FILES, type IdMaps } from '../repository/bundle-format.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { listVersions, readManifest, versionDir } from '../repository/versions.js';
import { createServer } from '../server/server.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { saveRandomSasrecCheckpoint } from '../test-support/sasrec-checkpoint.js';
import { scriptArgs } from '../core/script-args.js';

const HELP = `usage: npm run bench:sequential-serving -- [options]
  --name NAME        an exported sasrec model to measure (its newest version); default: build one with random weights
  --repo DIR         model repository of --name (default models)
  --data DIR         dataset of the random-weights bundle (default ../shared/data/scientific)
  --duration S       seconds per autocannon scenario (default 10, after a 2 s warm-up)
  --connections N    autocannon connections (default 50)
  --users N          random users for the after-an-interaction measurement (default 100)
  --tag T            suffix of the results file
`;

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string' },
    repo: { type: 'string', default: 'models' },
    data: { type: 'string', default: '../shared/data/scientific' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    users: { type: 'string', default: '100' },
    tag: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const num = (flag: string, v: string, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min}, got "${v}"`);
  return n;
};
const duration = num('duration', a.duration!, 1);
const connections = num('connections', a.connections!, 1);
const nUsers = num('users', a.users!, 1);
const say = (s: string) => process.stderr.write(`[sequential-serving] ${s}\n`);
const quiet = pino({ level: 'silent' });
const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

const scratch = mkdtempSync(join(tmpdir(), 'promptmm-seqbench-'));
let repo = resolve(a.repo!);
let name = a.name ?? 'seq-random';
let weights = 'trained';
if (!a.name) {
  // Random weights until the trainer is merged: the speed figures hold, the answers are not meaningful.
  weights = 'random';
  repo = join(scratch, 'models');
  mkdirSync(repo);
  const data = loadDataset(resolve(a.data!), { features: false });
  saveRandomSasrecCheckpoint(repo, name, data, { dim: 64, blocks: 2, heads: 1, maxLen: 50, ffDim: 64 }, 1);
  const t0 = performance.now();
  exportBundle(bundleFromCheckpoint(repo, name), { repo, hnsw: { space: 'ip', ...HNSW_DEFAULTS } });
  say(`exported a random-weights bundle of ${data.name} (${data.nUsers} users, ${data.nItems} items) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const version = listVersions(repo, name).at(-1);
if (version === undefined) throw new Error(`model ${name} has no exported version in ${repo}`);
const dir = versionDir(repo, name, version);
const manifest = readManifest(dir);
if (manifest.model !== 'sasrec') throw new Error(`${dir} is not a sequential bundle (manifest model ${JSON.stringify(manifest.model)}): export a sasrec checkpoint`);

try {
  // 1. HTTP throughput: the loadtest harness (its own server on a scratch link to the bundle), cached and uncached.
  const http: Record<string, unknown>[] = [];
  for (const [label, serverArgs] of [['cache on', []], ['cache off (--cache-users 0)', ['--cache-users=0']]] as const) {
    say(`autocannon ${label}: ${connections} connections, ${duration} s per scenario`);
    const r = await loadtest({ scenarios: ['recommend'], connections, duration, warmup: 2, name, repo, out: join(scratch, 'reports'), serverArgs: [...serverArgs], log: say });
    const [base, rec] = r.results;
    http.push({ label, healthzRps: base.rps, recommendRps: rec.rps, ratio: rec.ratioToBaseline, p50Ms: rec.latencyMs.p50, p99Ms: rec.latencyMs.p99, errors: rec.errors + rec.timeouts + rec.non2xx, provider: (r.model as { provider?: string })?.provider, loadavg: readLoad() });
  }

  // 2. The encoder alone, on the users' live sequences.
  const m = await loadServingModel(dir, { providers: ['cuda', 'cpu'], log: quiet });
  const rng = new Rng(7);
  const withHistory = Array.from({ length: m.bundleUsers }, (_, u) => u).filter((u) => m.sequences!.of(u).length > 0);
  const encoder: Record<string, unknown>[] = [];
  for (const batch of [1, 32, 256]) {
    const seqs = () => Array.from({ length: batch }, () => m.sequences!.of(withHistory[rng.int(withHistory.length)]));
    // 'one run': a single ONNX run padded to the batch's longest sequence; 'served': the same users
    // asked for concurrently, as the server's micro-batcher runs them (one run per width class).
    for (const [mode, run] of [
      ['one run', (s: Int32Array[]) => m.encoder!.encodeMany(s)],
      ['served', (s: Int32Array[]) => Promise.all(s.map((x) => m.encoder!.encode(x)))],
    ] as const) {
      for (let i = 0; i < 5; i++) await run(seqs());
      const ms: number[] = [];
      const t0 = performance.now();
      while (ms.length < 20 || (ms.length < 500 && performance.now() - t0 < 3000)) {
        const s = seqs();
        const t = performance.now();
        await run(s);
        ms.push(performance.now() - t);
      }
      encoder.push({ batch, mode, runs: ms.length, p50Ms: q(ms, 0.5), p99Ms: q(ms, 0.99), usPerUserP50: (q(ms, 0.5) * 1000) / batch, provider: m.encoder!.provider, loadavg: readLoad() });
    }
  }
  const meanLen = withHistory.reduce((s, u) => s + m.sequences!.of(u).length, 0) / withHistory.length;
  await m.close();

  // 3. Right after an interaction: an in-process server on a scratch link to the bundle (a fresh log).
  const live = join(scratch, 'live');
  mkdirSync(join(live, name), { recursive: true });
  symlinkSync(dir, versionDir(live, name, version), 'dir');
  const s = await createServer({ name, repo: live, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: ['cuda', 'cpu'], pollSeconds: 0, token: 't', online: { roundEvery: 0, roundSeconds: 0 } }, quiet);
  const get = async (user: string) => {
    const t = performance.now();
    const r = await s.app.inject({ method: 'GET', url: `/recommend?user=${encodeURIComponent(user)}&k=10` });
    const ms = performance.now() - t;
    if (r.statusCode !== 200) throw new Error(`GET /recommend?user=${user}: ${r.statusCode} ${r.body}`);
    return { ms, items: (r.json() as { items: { item: string }[] }).items.map((x) => x.item).join(',') };
  };
  const served = s.holder.model!;
  const ids = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.ids), 'utf8')) as IdMaps;
  const first: number[] = [];
  const repeat: number[] = [];
  const after: number[] = [];
  let changed = 0;
  const picked = rng.shuffle(Int32Array.from(withHistory)).subarray(0, Math.min(nUsers, withHistory.length));
  for (const u of picked) {
    const user = ids.users[u];
    const a1 = await get(user);
    const a2 = await get(user);
    let item = rng.int(served.nItems);
    while (served.isSeen(u, item)) item = rng.int(served.nItems);
    const p = await s.app.inject({ method: 'POST', url: '/interactions', headers: { authorization: 'Bearer t' }, payload: { interactions: [{ user, item: served.itemIds[item] }] } });
    if (p.statusCode !== 200) throw new Error(`POST /interactions: ${p.statusCode} ${p.body}`);
    const a3 = await get(user);
    first.push(a1.ms);
    repeat.push(a2.ms);
    after.push(a3.ms);
    if (a3.items !== a2.items) changed++;
  }
  await s.close();
  const interaction = {
    users: picked.length,
    top10Changed: changed / picked.length,
    firstBeforeMsP50: q(first, 0.5),
    repeatBeforeMsP50: q(repeat, 0.5),
    firstAfterMsP50: q(after, 0.5),
    firstAfterMsP99: q(after, 0.99),
    addedMsP50: q(after, 0.5) - q(repeat, 0.5),
    loadavg: readLoad(),
  };

  const result = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, name, version, weights, dataset: manifest.dataset.name, counts: manifest.counts, sequence: manifest.sequence, meanSequenceLength: meanLen, http, encoder, interaction };
  const f = (x: unknown, d = 2) => (typeof x === 'number' ? x.toFixed(d) : String(x));
  const lines = [
    `sequential serving: ${name} v${version} (${weights} weights, ${manifest.dataset.name}: ${manifest.counts.users} users, ${manifest.counts.items} items, dim ${manifest.dim}, maxLen ${manifest.sequence!.maxLen}, mean sequence ${meanLen.toFixed(1)})`,
    '',
    '| GET /recommend (autocannon) | /healthz req/s | /recommend req/s | ratio | p50 ms | p99 ms | errors | provider | load |',
    '|---|---|---|---|---|---|---|---|---|',
    ...http.map((h) => `| ${h.label} | ${f(h.healthzRps, 0)} | ${f(h.recommendRps, 0)} | ${f(h.ratio, 3)} | ${f(h.p50Ms)} | ${f(h.p99Ms)} | ${h.errors} | ${h.provider} | ${h.loadavg} |`),
    '',
    '| encoder alone, batch | how | runs | p50 ms | p99 ms | µs/user (p50) | provider | load |',
    '|---|---|---|---|---|---|---|---|',
    ...encoder.map((e) => `| ${e.batch} | ${e.mode} | ${e.runs} | ${f(e.p50Ms, 3)} | ${f(e.p99Ms, 3)} | ${f(e.usPerUserP50, 1)} | ${e.provider} | ${e.loadavg} |`),
    '',
    `after one POST /interactions (${interaction.users} random users, in-process): top-10 changed for ${(interaction.top10Changed * 100).toFixed(0)}%; ` +
      `p50 latency: first answer before ${f(interaction.firstBeforeMsP50, 3)} ms, repeated (cached) ${f(interaction.repeatBeforeMsP50, 3)} ms, first after ${f(interaction.firstAfterMsP50, 3)} ms (p99 ${f(interaction.firstAfterMsP99, 3)}); added ${f(interaction.addedMsP50, 3)} ms`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  mkdirSync('bench/results', { recursive: true });
  const out = join('bench/results', `sequential-serving-${new Date().toISOString().slice(0, 10)}${a.tag ? `-${a.tag}` : ''}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  say(`wrote ${out}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

/** The 1, 5 and 15 minute load averages (the machine is shared: every figure is reported with it). */
function readLoad(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}
