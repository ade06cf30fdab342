/**
 * bench:export — export time, bundle size and HNSW build rate; HNSW recall@20 against the exact
 * ONNX top-20 at several ef with the query time of each; ONNX top-k time per batch of 1, 32
 * and 256 users (CPU EP). On the Tiktok student (exported through the CLI path from
 * models/<name>/checkpoints/student) and on a synthetic catalog (default 1,000,000 items,
 * dim 64, clustered embeddings) exported through the same exporter.
 *
 *   npm run bench:export -- [--name tiktok] [--repo models] [--synthetic-items 1000000] [--synthetic-queries 2000] [--skip-tiktok] [--skip-synthetic]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { BUNDLE_FILES } from '../repository/bundle-format.js';
import { exportBundle, type BundleInput } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { HNSW_DEFAULTS, loadHnswIndex, rowArray } from '../repository/hnsw-index.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { initEngine } from '../trainer/engine/backend.js';
import { Rng } from '../core/rng.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string', default: 'tiktok' },
    repo: { type: 'string', default: 'models' },
    'synthetic-items': { type: 'string', default: '1000000' },
    'synthetic-users': { type: 'string', default: '20000' },
    'synthetic-queries': { type: 'string', default: '2000' },
    'skip-tiktok': { type: 'boolean', default: false },
    'skip-synthetic': { type: 'boolean', default: false },
  },
});
const EFS = [10, 20, 50, 100, 200, 400];
const K = 20;
const out = resolve('bench/out/export');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const hnswParams = { space: 'ip' as const, m: HNSW_DEFAULTS.m, efConstruction: HNSW_DEFAULTS.efConstruction, efSearch: HNSW_DEFAULTS.efSearch, seed: HNSW_DEFAULTS.seed };

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function measure(label: string, input: BundleInput, queryUsers: number[]) {
  process.stderr.write(`[${label}] exporting ${input.nItems} items × dim ${input.dim} …\n`);
  const r = exportBundle(input, { repo: join(out, 'repo'), hnsw: hnswParams, progress: Boolean(process.stderr.isTTY) });
  const d = input.dim;
  const session = await ort.InferenceSession.create(readFileSync(join(r.dir, BUNDLE_FILES.onnx)), { executionProviders: ['cpu'] });
  const kTensor = (k: number) => new ort.Tensor('int64', BigInt64Array.from([BigInt(k)]), [1]);

  // ONNX timing per batch size (after one warm-up run each).
  const onnxMs: Record<string, { meanMs: number; p99Ms: number; perUserMs: number }> = {};
  for (const b of [1, 32, 256]) {
    const users = new Float32Array(b * d);
    for (let i = 0; i < b; i++) users.set(input.userEmbeddings.subarray(queryUsers[i % queryUsers.length] * d, (queryUsers[i % queryUsers.length] + 1) * d), i * d);
    const feeds = { users: new ort.Tensor('float32', users, [b, d]), k: kTensor(K) };
    await session.run(feeds);
    const reps = b === 256 ? 10 : 50;
    const ts: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await session.run(feeds);
      ts.push(performance.now() - t);
    }
    const mean = ts.reduce((x, y) => x + y, 0) / reps;
    onnxMs[b] = { meanMs: +mean.toFixed(3), p99Ms: +quantile(ts, 0.99).toFixed(3), perUserMs: +(mean / b).toFixed(4) };
  }

  // Exact top-20 of every query user through the ONNX graph, in batches of 256.
  const exact: Int32Array[] = [];
  for (let s = 0; s < queryUsers.length; s += 256) {
    const ids = queryUsers.slice(s, s + 256);
    const users = new Float32Array(ids.length * d);
    ids.forEach((u, i) => users.set(input.userEmbeddings.subarray(u * d, (u + 1) * d), i * d));
    const res = await session.run({ users: new ort.Tensor('float32', users, [ids.length, d]), k: kTensor(K) });
    const rows = res.items.data as BigInt64Array;
    for (let i = 0; i < ids.length; i++) exact.push(Int32Array.from(rows.subarray(i * K, (i + 1) * K), Number));
  }

  const index = await loadHnswIndex(join(r.dir, BUNDLE_FILES.hnsw), d, 10);
  const hnsw: { ef: number; recallAt20: number; meanMs: number; p99Ms: number }[] = [];
  const q = new Array<number>(d);
  for (const ef of EFS) {
    index.setEf(ef);
    let hits = 0;
    const ts: number[] = [];
    queryUsers.forEach((u, i) => {
      rowArray(input.userEmbeddings, u, d, q);
      const t = performance.now();
      const got = index.searchKnn(q, K).neighbors;
      ts.push(performance.now() - t);
      const want = new Set(exact[i]);
      for (const g of got) if (want.has(g)) hits++;
    });
    hnsw.push({ ef, recallAt20: +(hits / (queryUsers.length * K)).toFixed(4), meanMs: +(ts.reduce((x, y) => x + y, 0) / ts.length).toFixed(4), p99Ms: +quantile(ts, 0.99).toFixed(4) });
  }
  const res = {
    items: input.nItems,
    users: input.nUsers,
    dim: d,
    queries: queryUsers.length,
    exportSeconds: +r.seconds.toFixed(2),
    bundleMiB: +(r.bytes / 2 ** 20).toFixed(1),
    files: Object.fromEntries(Object.entries(r.manifest.files).map(([f, e]) => [f, +(e.bytes / 2 ** 20).toFixed(2)])),
    hnswBuildSeconds: +r.hnsw.seconds.toFixed(2),
    hnswItemsPerSecond: Math.round(r.hnsw.itemsPerSecond),
    hnswParams,
    hnsw,
    onnx: onnxMs,
  };
  process.stderr.write(`[${label}] ${JSON.stringify(res)}\n`);
  rmSync(r.dir, { recursive: true, force: true });
  return res;
}

const report: Record<string, unknown> = { date: new Date().toISOString(), machine: '2 cores, no GPU; onnxruntime-node CPU EP; hnswlib-node single thread' };
if (!a['skip-tiktok']) {
  await initEngine('auto');
  const input = bundleFromCheckpoint(a.repo!, a.name!);
  report.tiktok = await measure('tiktok', input, Array.from({ length: input.nUsers }, (_, i) => i));
}
if (!a['skip-synthetic']) {
  const items = Number(a['synthetic-items']);
  const input = syntheticBundle({ name: 'synthetic', users: Number(a['synthetic-users']), items, dim: 64, seed: 11 });
  const rng = new Rng(5);
  const queries = Array.from({ length: Number(a['synthetic-queries']) }, () => rng.int(input.nUsers));
  report.synthetic = await measure(`synthetic ${items}`, input, queries);
}
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/export-${new Date().toISOString().slice(0, 10)}.json`;
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`${JSON.stringify(report, null, 2)}\n(written to ${file})\n`);
