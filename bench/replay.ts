/**
 * bench:replay — what a long interaction log costs the server: restart time (no snapshot, after a
 * clean close that left one, after a crash with the snapshot behind) and a version swap under light traffic (its duration, the
 * longest event-loop stall, request latency meanwhile), on a Tiktok-sized synthetic bundle.
 *
 *   npm run bench:replay -- [--records 500000] [--new-users 20000] [--out bench/out/replay] [--tag NAME]
 *
 * STALLS=1 prints every stall over 150 ms with its time; PROMPTMM_LOG_LEVEL=info shows the server's log.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { Rng } from '../core/rng.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { modelDir } from '../repository/versions.js';
import { createServer, type ServeConfig } from '../server/server.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    records: { type: 'string', default: '500000' },
    'new-users': { type: 'string', default: '20000' },
    out: { type: 'string', default: 'bench/out/replay' },
    /** names the results file: bench/results/replay-DATE[-TAG].json */
    tag: { type: 'string' },
  },
});
const records = Number(a.records);
const newUsers = Number(a['new-users']);
const out = resolve(a.out!);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const repo = join(out, 'models');
const name = 'tiktok-synth';
// The server's log: kept (snapshot timings come from it), warnings and errors shown.
const logLines: Record<string, unknown>[] = [];
const log = pino({ level: 'info' }, {
  write(line: string) {
    const j = JSON.parse(line) as Record<string, unknown>;
    logLines.push(j);
    if ((j.level as number) >= 40 || process.env.PROMPTMM_LOG_LEVEL === 'info') process.stderr.write(line);
  },
});
const HNSW = { space: 'ip' as const, m: 16, efSearch: 100, efConstruction: 100, seed: 1 };
// Tiktok's shape: 9,308 users, 6,710 items, ~6.4 train items per user, dim 64.
const TIKTOK = { users: 9308, items: 6710, dim: 64, seenPerUser: 6 };
const secs = (ms: number) => +(ms / 1000).toFixed(3);

let t = performance.now();
exportBundle(syntheticBundle({ name, ...TIKTOK, seed: 1 }), { repo, hnsw: HNSW });
process.stderr.write(`bundle v1 exported in ${secs(performance.now() - t)} s\n`);
// Version 2 (absorbed nothing: the whole log replays into it) is exported now into a scratch
// repository and moved into place at the swap, so no export runs on the measured event loop.
const scratch = join(out, 'scratch');
exportBundle(syntheticBundle({ name, ...TIKTOK, seed: 1 }), { repo: scratch, hnsw: HNSW });
exportBundle(syntheticBundle({ name, ...TIKTOK, seed: 2 }), { repo: scratch, hnsw: HNSW });

// The log: 80% bundle users, 20% users first seen online; Zipf-like items.
t = performance.now();
const ilog = InteractionLog.open(join(modelDir(repo, name), 'interactions'));
const rng = new Rng(3);
const logN = Math.log(TIKTOK.items + 1);
for (let n = 0; n < records; n += 1000) {
  const batch = Array.from({ length: Math.min(1000, records - n) }, (_, k) => ({
    user: rng.next() < 0.8 ? `u${rng.int(TIKTOK.users)}` : `new${rng.int(newUsers)}`,
    item: `i${Math.min(TIKTOK.items - 1, Math.floor(Math.exp(rng.next() * logN)) - 1)}`,
    ts: n + k,
  }));
  await ilog.append(batch);
}
await ilog.close();
process.stderr.write(`${records} log records written in ${secs(performance.now() - t)} s\n`);

const cfg: ServeConfig = { name, repo, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: ['cpu'], pollSeconds: 0, token: 'secret', online: { roundEvery: 0, roundSeconds: 0 } };
const snapshots = join(modelDir(repo, name), 'online-state');

async function restart(label: string) {
  const t0 = performance.now();
  const s = await createServer(cfg, log);
  const ms = performance.now() - t0;
  process.stderr.write(`${label}: ready in ${secs(ms)} s (version ${s.holder.model?.version}, applied up to ${s.holder.model?.appliedPosition})\n`);
  return { s, seconds: secs(ms) };
}

const result: Record<string, unknown> = { date: new Date().toISOString(), records, newUsers, bundle: TIKTOK, node: process.version };

rmSync(snapshots, { recursive: true, force: true });
const cold = await restart('restart, no snapshot (a crash before any, or a new version)');
result.restartNoSnapshotSeconds = cold.seconds;
await cold.s.close();
const warm = await restart('restart after a clean close');
result.restartAfterCloseSeconds = warm.seconds;
await warm.s.close();
// A crash: the last snapshot is behind the log by at most snapshotEvery (default 50,000) records.
const behind = Math.min(50_000, records);
const more = InteractionLog.open(join(modelDir(repo, name), 'interactions'));
for (let n = 0; n < behind; n += 1000) await more.append(Array.from({ length: Math.min(1000, behind - n) }, (_, k) => ({ user: `u${rng.int(TIKTOK.users)}`, item: `i${rng.int(TIKTOK.items)}`, ts: records + n + k })));
await more.close();
const crashed = await restart(`restart after a crash, the snapshot ${behind} records behind`);
result.restartSnapshotBehind = { records: behind, seconds: crashed.seconds };
const s = crashed.s;

// A swap to a fresh export (logPosition 0: the whole log replays into it) under light traffic.
const latencies: number[] = [];
let stop = false;
const traffic = (async () => {
  const r = new Rng(9);
  for (let n = 0; !stop; n++) {
    const t1 = performance.now();
    const res =
      n % 10 === 9
        ? await s.app.inject({ method: 'POST', url: '/interactions', headers: { authorization: 'Bearer secret' }, payload: { interactions: [{ user: `u${r.int(TIKTOK.users)}`, item: `i${r.int(TIKTOK.items)}` }] } })
        : await s.app.inject({ method: 'GET', url: `/recommend?user=u${r.int(TIKTOK.users)}&k=10` });
    if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`);
    latencies.push(performance.now() - t1);
  }
})();
await new Promise((r) => setTimeout(r, 300));
/** The longest event-loop stall while `during` runs: a 1 ms timer's longest gap, and the delay histogram (whose sampling can miss one long block). */
async function stalls<T>(during: () => Promise<T>) {
  const hist = monitorEventLoopDelay({ resolution: 1 });
  hist.enable();
  let worst = 0;
  let prev = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    if (now - prev > 150 && process.env.STALLS) process.stderr.write(`stall ${(now - prev).toFixed(0)} ms ending at ${Date.now()}\n`);
    worst = Math.max(worst, now - prev);
    prev = now;
  }, 1);
  const value = await during();
  clearInterval(tick);
  hist.disable();
  return { value, maxMs: +Math.max(hist.max / 1e6, worst, performance.now() - prev).toFixed(1), p99Ms: +(hist.percentile(99) / 1e6).toFixed(1) };
}
// The same traffic without a swap first: what the machine itself stalls (a busy shared host does).
const baseline = await stalls(() => new Promise((r) => setTimeout(r, 5000)));
result.trafficOnly = { seconds: 5, maxEventLoopStallMs: baseline.maxMs, p99EventLoopDelayMs: baseline.p99Ms };
process.stderr.write(`traffic alone, 5 s: ${JSON.stringify(result.trafficOnly)}\n`);
latencies.length = 0;
const t0 = performance.now();
const swap = await stalls(() => {
  renameSync(join(modelDir(scratch, name), '2'), join(modelDir(repo, name), '2'));
  return s.reloader.reload();
});
const swapMs = performance.now() - t0;
const swapped = swap.value;
stop = true;
await traffic;
const sorted = [...latencies].sort((x, y) => x - y);
const q = (p: number) => +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(2);
result.swap = { version: swapped.version, seconds: secs(swapMs), maxEventLoopStallMs: swap.maxMs, p99EventLoopDelayMs: swap.p99Ms, requests: latencies.length, latencyMs: { p50: q(0.5), p99: q(0.99), max: q(1) } };
process.stderr.write(`swap to v${swapped.version}: ${JSON.stringify(result.swap)}\n`);
await s.close();
const written = logLines.filter((l) => l.msg === 'online-state snapshot written');
result.snapshots = written.map((l) => ({ position: l.position, bytes: l.bytes, onlineUsers: l.onlineUsers, captureMs: l.captureMs, seconds: l.seconds }));

console.log(JSON.stringify(result, null, 2));
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `replay-${new Date().toISOString().slice(0, 10)}${a.tag ? `-${a.tag}` : ''}.json`), JSON.stringify(result, null, 2) + '\n');
