/**
 * A synthetic bundle input for scale tests and benchmarks (1M items, 1M users) that goes
 * through the normal export path. Embeddings are drawn around cluster centres with per-row
 * norm spread, like trained LightGCN tables (clustered, not isotropic noise: an ANN index on
 * isotropic 64-d noise measures nothing a recommender meets). Seen items follow a Zipf-like
 * popularity.
 */
import { Rng } from '../core/rng.js';
import type { BundleInput } from './exporter.js';

export interface SyntheticBundleOptions {
  name: string;
  users: number;
  items: number;
  dim?: number;
  clusters?: number;
  seenPerUser?: number;
  seed?: number;
}

function clustered(rng: Rng, rows: number, dim: number, centres: Float32Array, k: number, spread: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const c = Math.floor(rng.next() * k);
    const scale = 0.5 + rng.next(); // norms vary, as popularity makes them in trained tables
    for (let j = 0; j < dim; j++) out[r * dim + j] = scale * (centres[c * dim + j] + spread * rng.normal());
  }
  return out;
}

export function syntheticBundle(o: SyntheticBundleOptions): BundleInput {
  const dim = o.dim ?? 64;
  const k = o.clusters ?? 256;
  const seenPerUser = o.seenPerUser ?? 10;
  const rng = new Rng(o.seed ?? 7);
  const centres = new Float32Array(k * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = rng.normal() / Math.sqrt(dim);
  const spread = 0.6 / Math.sqrt(dim);
  const userEmbeddings = clustered(rng, o.users, dim, centres, k, spread);
  const itemEmbeddings = clustered(rng, o.items, dim, centres, k, spread);

  // Zipf(≈1) item draws by inverting the continuous CDF of 1/x over [1, items+1).
  const logN = Math.log(o.items + 1);
  const indptr = new Int32Array(o.users + 1);
  const cols: number[] = [];
  const popularity = new Int32Array(o.items);
  const row = new Set<number>();
  for (let u = 0; u < o.users; u++) {
    row.clear();
    const want = Math.min(o.items, 1 + Math.floor(rng.next() * 2 * seenPerUser));
    for (let t = 0; row.size < want && t < want * 4; t++) row.add(Math.min(o.items - 1, Math.floor(Math.exp(rng.next() * logN)) - 1));
    const sorted = [...row].sort((a, b) => a - b);
    for (const i of sorted) {
      cols.push(i);
      popularity[i]++;
    }
    indptr[u + 1] = cols.length;
  }
  return {
    name: o.name,
    dataset: { name: `synthetic-${o.users}x${o.items}`, hash: `synthetic-seed-${o.seed ?? 7}` },
    nUsers: o.users,
    nItems: o.items,
    dim,
    userEmbeddings,
    itemEmbeddings,
    ids: { users: Array.from({ length: o.users }, (_, i) => `u${i}`), items: Array.from({ length: o.items }, (_, i) => `i${i}`) },
    seen: { indptr, indices: Int32Array.from(cols) },
    popularity,
    training: { objective: 'synthetic', note: 'clustered random embeddings, not trained' },
    metrics: {},
  };
}
