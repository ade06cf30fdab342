/**
 * bench:heavy — /healthz and /readyz latency while concurrent maximal batch requests run: a
 * synthetic Tiktok-sized bundle (9,308 users × 6,710 items, dim 64) served by `promptmm serve` in
 * a child process; a worker thread keeps `--clients` POST /recommend batches of `--users` × `--k`
 * in flight (bodies read, not parsed); this thread probes /healthz and /readyz one after another.
 *
 *   npm run bench:heavy -- [--clients 4] [--users 256] [--k 100] [--seconds 10] [--retrieval ann|exact] [--cli dist/cli/promptmm.js] [--json FILE]
 *
 * `--cli` runs another build's server (e.g. the base commit's) against the same load, for a before/after.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { CLI } from '../loadtest/spawn-server.js';
import { scriptArgs } from '../core/script-args.js';

interface Load {
  url: string;
  clients: number;
  users: number;
  k: number;
  retrieval: string;
  nUsers: number;
}
interface LoadResult {
  statuses: Record<string, number>;
  batchMs: number[];
  bytes: number;
}

const quantile = (xs: number[], q: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const round = (x: number) => Math.round(x * 10) / 10;

/** The worker: `clients` loops of batch POSTs until told to stop; then its counts. */
async function loadWorker(o: Load): Promise<void> {
  let stop = false;
  parentPort!.once('message', () => (stop = true));
  const r: LoadResult = { statuses: {}, batchMs: [], bytes: 0 };
  let seed = 1;
  const loop = async () => {
    while (!stop) {
      const users = Array.from({ length: o.users }, () => `u${(seed = (seed * 48271) % 2147483647) % o.nUsers}`);
      const t0 = performance.now();
      try {
        const res = await fetch(`${o.url}/recommend`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ users, k: o.k, retrieval: o.retrieval }) });
        r.bytes += (await res.arrayBuffer()).byteLength;
        r.statuses[res.status] = (r.statuses[res.status] ?? 0) + 1;
        if (res.status === 503) await new Promise((f) => setTimeout(f, 50));
      } catch {
        r.statuses.error = (r.statuses.error ?? 0) + 1;
      }
      r.batchMs.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: o.clients }, loop));
  parentPort!.postMessage(r);
}

async function main(): Promise<void> {
  const { values: a } = scriptArgs(import.meta.url, {
    options: {
      clients: { type: 'string', default: '4' },
      users: { type: 'string', default: '256' },
      k: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '10' },
      retrieval: { type: 'string', default: 'ann' },
      cli: { type: 'string', default: CLI },
      json: { type: 'string' },
    },
  });
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-heavy-'));
  const N_USERS = 9308;
  const input = syntheticBundle({ name: 'heavy', users: N_USERS, items: 6710, dim: 64, seenPerUser: 6, seed: 5 });
  exportBundle(input, { repo, hnsw: { space: 'ip', ...HNSW_DEFAULTS } });
  const child = spawn(process.execPath, [a.cli!, 'serve', '--name', 'heavy', '--repo', repo, '--port', '0', '--poll-seconds', '0', '--cache-users', '0'], {
    env: { ...process.env, PROMPTMM_LOG_LEVEL: 'info', PROMPTMM_TOKEN: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    let err = '';
    const url = await new Promise<string>((res, rej) => {
      child.stderr!.on('data', (b: Buffer) => {
        err = (err + b.toString()).slice(-(64 << 10));
        const m = /serving on (http:\/\/[^"]+)"/.exec(err);
        if (m) res(m[1]);
      });
      child.on('exit', (code) => rej(new Error(`the server exited (${code}) before listening:\n${err.slice(-2000)}`)));
    });

    const probe = async (path: string): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(url + path);
      await res.arrayBuffer();
      return performance.now() - t0;
    };
    // Idle figures first, then under load.
    const idle: number[] = [];
    for (let i = 0; i < 200; i++) idle.push(await probe('/healthz'));

    const load: Load = { url, clients: Number(a.clients), users: Number(a.users), k: Number(a.k), retrieval: a.retrieval!, nUsers: N_USERS };
    const worker = new Worker(new URL(import.meta.url), { workerData: load });
    const done = new Promise<LoadResult>((res, rej) => {
      worker.once('message', res);
      worker.once('error', rej);
    });
    await new Promise((f) => setTimeout(f, 500)); // let the batches start
    const healthz: number[] = [];
    const readyz: number[] = [];
    const end = performance.now() + Number(a.seconds) * 1000;
    while (performance.now() < end) {
      healthz.push(await probe('/healthz'));
      readyz.push(await probe('/readyz'));
      await new Promise((f) => setTimeout(f, 10));
    }
    worker.postMessage('stop');
    const r = await done;
    await worker.terminate();
    const stats = (xs: number[]) => ({ n: xs.length, p50: round(quantile(xs, 0.5)), p99: round(quantile(xs, 0.99)), max: round(Math.max(...xs)) });
    const out = {
      date: new Date().toISOString(),
      cli: a.cli,
      bundle: { users: N_USERS, items: 6710, dim: 64 },
      load: { clients: load.clients, users: load.users, k: load.k, retrieval: load.retrieval, seconds: Number(a.seconds) },
      note: 'server, load worker and prober on the same machine (loopback), sharing its cores',
      idleHealthzMs: stats(idle),
      healthzMs: stats(healthz),
      readyzMs: stats(readyz),
      batches: { statuses: r.statuses, ms: stats(r.batchMs), mibPerBatch: round(r.bytes / Math.max(1, r.batchMs.length) / 2 ** 20) },
    };
    const text = JSON.stringify(out, null, 2);
    process.stdout.write(text + '\n');
    if (a.json) writeFileSync(a.json, text + '\n');
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((f) => child.once('exit', f));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(repo, { recursive: true, force: true });
  }
}

if (isMainThread) await main();
else await loadWorker(workerData as Load);
