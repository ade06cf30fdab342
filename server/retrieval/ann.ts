/**
 * The ANN retrieval path: hnswlib search over-fetching past the user's seen items (filtered inside
 * the search only when too few unseen ones come back), the candidates cached per user and
 * re-ranked by the student's score; exact when the search comes back short.
 */
import type { HnswIndex } from '../../repository/hnsw-index.js';
import { ANN_CANDIDATES, type CandidateCache } from './candidate-cache.js';
import { exactRetriever, type ExactSource } from './exact.js';
import { rank, unseen, wanted, type RetrievalQuery, type Retriever, type SeenFilter } from './retriever.js';

/** What the ANN path reads of a served version; the exact path is its fall-back. */
export interface AnnSource extends ExactSource {
  /** Replaced by a rebuilt index after a fine-tuning round that moved much of the catalog. */
  readonly ann: HnswIndex;
  readonly candidates: CandidateCache;
}

export const annRetriever: Retriever<AnnSource> = {
  name: 'ann',
  async retrieve(source, q) {
    const { want, need } = wanted(source, q);
    const rows = q.seen ? unseen(candidates(source, q, q.seen, want), q.seen) : source.ann.searchKnn(plainArray(q.vector), Math.min(need, source.ann.getCurrentCount())).neighbors;
    // The graph search came back short (tiny or pathological catalog): answer exactly instead.
    if (rows.length < want) return exactRetriever.retrieve(source, q);
    return { items: rank(source, q.vector, rows, q.k), retrieval: 'ann' };
  },
};

/** hnswlib-node takes plain arrays only; one scratch array per dimension (searches are synchronous). */
const scratch = new Map<number, number[]>();
function plainArray(v: Float32Array): number[] {
  let a = scratch.get(v.length);
  if (!a) scratch.set(v.length, (a = new Array<number>(v.length).fill(0)));
  for (let j = 0; j < v.length; j++) a[j] = v[j];
  return a;
}

/**
 * The user's cached candidates while `want` of them are still unseen; else one search for the
 * top max(k, ANN_CANDIDATES) = c unseen items, cached for the next answers. hnswlib's filter is
 * a JS call per visited label (measured on Tiktok: ~290 calls, ~35% of a search even when it
 * filters nothing), so the search runs without it, over-fetching by up to c more for the seen
 * items that may be among the nearest, and keeps the unseen; only when fewer than `want`
 * survive (heavy users whose history crowds the top) is it repeated with the filter.
 */
function candidates(source: AnnSource, q: RetrievalQuery, seen: SeenFilter, want: number): Int32Array {
  const cache = q.cache !== false;
  const cached = cache ? source.candidates.get(q.row) : undefined;
  if (cached && countUnseen(cached, seen) >= want) return cached;
  // (The index may hold fewer than nItems: an added item still being placed.)
  const indexed = Math.min(source.nItems, source.ann.getCurrentCount());
  const c = Math.min(Math.max(q.k, ANN_CANDIDATES), indexed);
  const query = plainArray(q.vector);
  let found = unseenUpTo(source.ann.searchKnn(query, Math.min(indexed, c + Math.min(seen.count, c))).neighbors, seen, c);
  if (found.length < want) found = Int32Array.from(source.ann.searchKnn(query, c, (label: number) => !seen.has(label)).neighbors);
  if (cache) source.candidates.set(q.row, found);
  return found;
}

/** The first `most` unseen of `rows`, in their order. */
function unseenUpTo(rows: number[], seen: SeenFilter, most: number): Int32Array {
  const out = new Int32Array(Math.min(most, rows.length));
  let n = 0;
  for (let i = 0; i < rows.length && n < most; i++) if (!seen.has(rows[i])) out[n++] = rows[i];
  return n === out.length ? out : out.slice(0, n);
}

function countUnseen(items: Int32Array, seen: SeenFilter): number {
  let n = 0;
  for (let i = 0; i < items.length; i++) if (!seen.has(items[i])) n++;
  return n;
}
