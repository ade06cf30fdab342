/**
 * bench:items-put — PUT /items latency and what added items cost /recommend (issue 18).
 *
 * Starts a server (a child process, on a scratch copy of the repository: its log is fresh) on the
 * newest bundle of --name, which must hold an item encoder; measures `recommend` against
 * /healthz (the loadtest's paired runs, --repeat), adds --share of the catalog as new items by
 * PUT /items (features of random items of --data under new ids: first one at a time, then
 * --concurrency in flight), then measures `recommend` again with them in the catalog.
 *
 *   npm run bench:items-put -- --name NAME --repo DIR --data DATASET_DIR [--share 0.1] [--concurrency 8] [--duration 10] [--repeat 3]
 *
 * Writes bench/results/items-put-<date>.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../data/dataset.js';
import { Rng } from '../core/rng.js';
import { loadtest, startServer, waitReady, type LoadtestOptions } from '../loadtest/run.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string' },
    repo: { type: 'string', default: 'models' },
    data: { type: 'string' },
    share: { type: 'string', default: '0.1' },
    concurrency: { type: 'string', default: '8' },
    duration: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    seed: { type: 'string', default: '1' },
  },
});
if (!a.name || !a.data) {
  process.stderr.write('usage: npm run bench:items-put -- --name NAME --repo DIR --data DATASET_DIR [--share 0.1] [--concurrency 8] [--duration 10] [--repeat 3]\n');
  process.exit(2);
}
const token = randomBytes(16).toString('hex');
const loads: number[] = [];
const sampleLoad = () => loads.push(+loadavg()[0].toFixed(2));
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2);
};
const stats = (ms: number[]) => ({ n: ms.length, p50: q(ms, 0.5), p90: q(ms, 0.9), p99: q(ms, 0.99), max: q(ms, 1) });

const base: LoadtestOptions = {
  scenarios: ['recommend'],
  connections: Number(a.connections),
  duration: Number(a.duration),
  warmup: 2,
  repeat: Number(a.repeat),
  name: a.name,
  repo: a.repo!,
  token,
  out: join('bench', 'out', 'items-put'),
  serverArgs: [],
};

const data = loadDataset(a.data, {});
if (!data.modalities.length) throw new Error(`${a.data}: no modality features to put items with`);
const server = await startServer(base, token);
try {
  const ready = (await waitReady(server.url)) as { model: { items: number; version: number } };
  const items0 = ready.model.items;
  sampleLoad();
  const before = await loadtest({ ...base, url: server.url });
  sampleLoad();

  const count = Math.round(Number(a.share) * items0);
  const rng = new Rng(Number(a.seed));
  const body = () => {
    const row = rng.int(data.nItems);
    return JSON.stringify({ features: Object.fromEntries(data.modalities.map((m) => [m.name, Array.from(m.data.subarray(row * m.dim, (row + 1) * m.dim))])), labels: ['new'] });
  };
  let next = 0;
  const putOne = async (): Promise<number> => {
    const id = `put-${next++}`;
    const payload = body();
    const t0 = performance.now();
    const r = await fetch(`${server.url}/items/${id}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: payload });
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`PUT /items/${id}: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
    return ms;
  };
  const sequential: number[] = [];
  const half = Math.floor(count / 2);
  for (let k = 0; k < half; k++) sequential.push(await putOne());
  const concurrent: number[] = [];
  const c = Number(a.concurrency);
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < count) concurrent.push(await putOne());
  }));
  sampleLoad();
  const after = (await waitReady(server.url)) as { model: { items: number } };
  if (after.model.items !== items0 + count) throw new Error(`the served catalog has ${after.model.items} items, expected ${items0} + ${count}`);
  const withNew = await loadtest({ ...base, url: server.url });
  sampleLoad();

  const summary = (r: Awaited<ReturnType<typeof loadtest>>) => r.summary.find((s) => s.scenario === 'recommend');
  const result = {
    bench: 'items-put',
    date: new Date().toISOString(),
    bundle: { name: a.name, repo: a.repo, version: ready.model.version, items: items0 },
    featuresFrom: a.data,
    itemsPut: count,
    putLatencyMs: { oneAtATime: stats(sequential), [`${c}InFlight`]: stats(concurrent) },
    recommend: { without: summary(before), withNewItems: summary(withNew) },
    loadAverage1m: { min: Math.min(...loads), max: Math.max(...loads) },
    note: 'server and clients on the same machine; PUT latency measured by the client (fetch over loopback), including the encoder run and the durable append (fdatasync)',
  };
  mkdirSync(join('bench', 'results'), { recursive: true });
  const file = join('bench', 'results', `items-put-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  process.stderr.write(`[items-put] written ${file}\n`);
} finally {
  server.child.kill('SIGTERM');
  rmSync(server.scratch, { recursive: true, force: true });
}
