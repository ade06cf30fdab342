/**
 * npm run loadtest:scale-bundle — a synthetic bundle of 1,000,000 users and 1,000,000 items
 * (dim 64, clustered embeddings, Zipf-like histories) exported through the normal exporter, so
 * the load test can run the same scenarios at catalog scale.
 *
 *   npm run loadtest:scale-bundle -- [--name scale-1m] [--repo models] [--users 1000000] [--items 1000000]
 */
import { exportBundle } from '../export/exporter.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string', default: 'scale-1m' },
    repo: { type: 'string', default: process.env.PROMPTMM_REPO ?? 'models' },
    users: { type: 'string', default: '1000000' },
    items: { type: 'string', default: '1000000' },
  },
});
const t0 = performance.now();
const input = syntheticBundle({ name: a.name!, users: Number(a.users), items: Number(a.items), dim: 64, seed: 21 });
process.stderr.write(`generated ${input.nUsers} users × ${input.nItems} items in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
const r = exportBundle(input, { repo: a.repo!, hnsw: { space: 'ip', ...HNSW_DEFAULTS }, progress: Boolean(process.stderr.isTTY) });
process.stdout.write(`${JSON.stringify({ name: a.name, version: r.version, dir: r.dir, mib: +(r.bytes / 2 ** 20).toFixed(1), exportSeconds: +r.seconds.toFixed(1), hnswItemsPerSecond: Math.round(r.hnsw.itemsPerSecond) })}\n`);
