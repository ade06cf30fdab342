/** Small bundles and servers for the server tests. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { exportBundle, type BundleInput } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { createServer, type ServeConfig } from '../server/server.js';

export const HNSW = { space: 'ip' as const, m: 16, efConstruction: 200, efSearch: 400, seed: 1 };
export const quietLog = pino({ level: process.env.PROMPTMM_TEST_LOG ?? 'silent' });

/** 200 users × 300 items, dim 16; user "u0" has no history (a cold start). */
export function smallBundle(name: string, seed = 1): BundleInput {
  const b = syntheticBundle({ name, users: 200, items: 300, dim: 16, seed, seenPerUser: 8 });
  const drop = b.seen.indptr[1];
  const indptr = b.seen.indptr.map((v, i) => (i === 0 ? 0 : v - drop));
  const indices = b.seen.indices.slice(drop);
  const popularity = new Int32Array(b.nItems);
  for (const i of indices) popularity[i]++;
  return { ...b, seen: { indptr, indices }, popularity };
}

export function repoWith(name: string, versions = 1): { repo: string; input: BundleInput } {
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-serve-'));
  const input = smallBundle(name);
  for (let v = 0; v < versions; v++) exportBundle(input, { repo, hnsw: HNSW });
  return { repo, input };
}

export async function testServer(repo: string, name: string, over: Partial<ServeConfig> = {}) {
  return createServer({ name, repo, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: ['cuda', 'cpu'], pollSeconds: 0, token: 'secret', ...over }, quietLog);
}
