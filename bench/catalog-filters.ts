/**
 * bench:catalog — GET /recommend req/s with issue 18's request filters against without, on a
 * synthetic Tiktok-sized bundle (9,308 users × 6,710 items, dim 64; every item labelled `c0`–`c9`
 * by row, so `labels=c3` keeps a tenth of the catalog) served by `promptmm serve` in a child
 * process, autocannon with `--connections` connections for `--duration` s per scenario (after a
 * 2 s warm-up), users cycling through the table:
 *   plain                      no filter (the result cache answers repeats)
 *   exclude1-unknown           exclude=<an id the catalog lacks>: no filter in effect, caches bypassed (the uncached baseline)
 *   exclude20                  exclude=<20 item ids> (no result cache, no candidate cache)
 *   labels                     labels=c3 (a tenth of the catalog allowed: scored whole, see ALLOWED_SCAN in recommender.ts)
 *   exclude_labels             exclude_labels=c3,c4
 *
 *   npm run bench:catalog -- [--duration 8] [--connections 20] [--retrieval ann|exact] [--json FILE]
 *
 * Prints a table and writes JSON (default bench/results/catalog-filters-<date>.json) with the
 * machine's 1-minute load average before and after each scenario: on shared cores the figures
 * mean little without it. PUT /items latency and the new-items catalog are not measured here
 * (the items API is not built yet).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { spawnServer } from '../loadtest/spawn-server.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '20' },
    retrieval: { type: 'string', default: 'ann' },
    json: { type: 'string' },
  },
});
const duration = Number(a.duration);
const connections = Number(a.connections);
const USERS = 9308;
const ITEMS = 6710;
const repo = mkdtempSync(join(tmpdir(), 'bench-catalog-'));
process.on('exit', () => rmSync(repo, { recursive: true, force: true }));
const input = syntheticBundle({ name: 'cat', users: USERS, items: ITEMS, dim: 64, seed: 1, seenPerUser: 8 });
exportBundle({ ...input, itemLabels: new Map(Array.from({ length: ITEMS }, (_, r) => [r, [`c${r % 10}`]] as [number, string[]])) }, { repo, hnsw: { space: 'ip', ...HNSW_DEFAULTS } });
const server = spawnServer(['--name', 'cat', '--repo', repo, '--port', '0', '--retrieval', String(a.retrieval), '--poll-seconds', '0']);
const url = await server.url;

const exclude20 = Array.from({ length: 20 }, (_, i) => `i${i * 37}`).join(',');
const scenarios: [string, string][] = [
  ['plain', ''],
  // no filter in effect, but a request filter is given: no result cache, no candidate cache (the uncached baseline)
  ['exclude1-unknown', '&exclude=no-such-item'],
  ['exclude20', `&exclude=${exclude20}`],
  ['labels', '&labels=c3'],
  ['exclude_labels', '&exclude_labels=c3,c4'],
];

async function run(query: string, seconds: number) {
  let n = 0;
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    requests: [{ setupRequest: (req) => ({ ...req, path: `/recommend?user=u${1 + (n++ % (USERS - 1))}&k=10${query}` }) }],
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

const rows: Record<string, unknown>[] = [];
try {
  for (const [name, query] of scenarios) {
    await run(query, 2);
    const load0 = loadavg()[0];
    const r = await run(query, duration);
    rows.push({ scenario: name, ...r, load: [+load0.toFixed(2), +loadavg()[0].toFixed(2)] });
    console.log(`${name.padEnd(16)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  errors ${r.errors}  load ${load0.toFixed(2)}→${loadavg()[0].toFixed(2)}`);
  }
} finally {
  server.child.kill('SIGTERM');
}
const base = rows[0].rps as number;
for (const r of rows) r.ratioToPlain = +((r.rps as number) / base).toFixed(3);
const out = { bench: 'catalog-filters', date: new Date().toISOString(), retrieval: a.retrieval, connections, duration, users: USERS, items: ITEMS, dim: 64, rows };
const file = a.json ?? join('bench', 'results', `catalog-filters-${out.date.slice(0, 10)}.json`);
mkdirSync(join(file, '..'), { recursive: true });
writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
console.log(`written ${file}`);
