/**
 * The symmetric-normalised user-item graph of LightGCN: nodes are users 0..U-1 then
 * items U..U+I-1, one edge per distinct train pair, weight 1/sqrt(deg(u)·deg(i)).
 */
import type { Csr } from './dataset.js';

export interface NormalizedGraph {
  nNodes: number;
  indptr: Int32Array;
  indices: Int32Array;
  values: Float32Array;
}

/** Builds Â = D^-1/2 A D^-1/2 from the per-user train sets (already deduplicated). */
export function normalizedAdjacency(nUsers: number, nItems: number, trainByUser: Csr): NormalizedGraph {
  const n = nUsers + nItems;
  const deg = new Int32Array(n);
  for (let u = 0; u < nUsers; u++) {
    const a = trainByUser.indptr[u];
    const b = trainByUser.indptr[u + 1];
    deg[u] = b - a;
    for (let k = a; k < b; k++) deg[nUsers + trainByUser.indices[k]]++;
  }
  const indptr = new Int32Array(n + 1);
  for (let v = 0; v < n; v++) indptr[v + 1] = indptr[v] + deg[v];
  const nnz = indptr[n];
  const indices = new Int32Array(nnz);
  const values = new Float32Array(nnz);
  const cursor = indptr.slice(0, n);
  const inv = new Float64Array(n);
  for (let v = 0; v < n; v++) inv[v] = deg[v] > 0 ? 1 / Math.sqrt(deg[v]) : 0;
  // Users in ascending order, so every item's neighbour list comes out sorted too.
  for (let u = 0; u < nUsers; u++) {
    for (let k = trainByUser.indptr[u]; k < trainByUser.indptr[u + 1]; k++) {
      const item = nUsers + trainByUser.indices[k];
      const w = inv[u] * inv[item];
      indices[cursor[u]] = item;
      values[cursor[u]++] = w;
      indices[cursor[item]] = u;
      values[cursor[item]++] = w;
    }
  }
  return { nNodes: n, indptr, indices, values };
}
