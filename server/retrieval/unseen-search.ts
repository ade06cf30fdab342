/**
 * The ANN path's candidate search, one function for both threads that run it (the event loop,
 * ann.ts, and the search threads, search-worker.ts), so that both give the same rows for the
 * same index: the top `c` items the filter lets through.
 *
 * hnswlib's filter is a JS call per visited label (measured on Tiktok: ~290 calls, ~35% of a
 * search even when it filters nothing), so the search runs without it, over-fetching (`first`
 * ≥ c) for the left-out items that may be among the nearest, and keeps the first c let
 * through; only when fewer than `want` survive (heavy users whose history crowds the top) is it
 * repeated with the filter.
 */

/** The part of an hnswlib index the search reads. */
export interface Searchable {
  searchKnn(query: number[], k: number, filter?: (label: number) => boolean): { neighbors: number[] };
}

export function searchUnseen(index: Searchable, query: number[], c: number, first: number, want: number, out: (row: number) => boolean): Int32Array {
  const found = unseenUpTo(index.searchKnn(query, first).neighbors, out, c);
  if (found.length >= want) return found;
  const allowed = (label: number) => !out(label);
  return Int32Array.from(index.searchKnn(query, c, allowed).neighbors);
}

/** The first `most` of `rows` the filter lets through, in their order. */
function unseenUpTo(rows: number[], out: (row: number) => boolean, most: number): Int32Array {
  const kept = new Int32Array(Math.min(most, rows.length));
  let n = 0;
  for (let i = 0; i < rows.length && n < most; i++) if (!out(rows[i])) kept[n++] = rows[i];
  return n === kept.length ? kept : kept.slice(0, n);
}
