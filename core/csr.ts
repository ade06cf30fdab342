/** Compressed sparse rows (a user's items, an item's users): the type and its lookups, shared by data, export and server. */

/** Row r holds indices[indptr[r] .. indptr[r+1]), sorted ascending within a row. */
export interface Csr {
  indptr: Int32Array;
  indices: Int32Array;
}

/** Binary search in the sorted row `u` of a CSR. */
export function csrHas(csr: Csr, u: number, item: number): boolean {
  let lo = csr.indptr[u];
  let hi = csr.indptr[u + 1] - 1;
  const idx = csr.indices;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = idx[mid];
    if (v === item) return true;
    if (v < item) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
