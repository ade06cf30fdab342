/**
 * The ANN retrieval path: hnswlib search over-fetching past the user's seen items (filtered inside
 * the search only when too few unseen ones come back), the candidates cached per user and
 * re-ranked by the student's score; exact when the search comes back short.
 */
import type { AnnIndex } from './ann-index.js';
import { ANN_CANDIDATES, type CandidateCache } from './candidate-cache.js';
import { exactRetriever, type ExactSource } from './exact.js';
import { rank, unseen, wanted, type RetrievalQuery, type Retriever, type SeenFilter } from './retriever.js';
import { rowArray } from '../../repository/hnsw-index.js';

/** What the ANN path reads of a served version; the exact path is its fall-back. */
export interface AnnSource extends ExactSource {
  /** Replaced by a rebuilt index after a fine-tuning round that moved much of the catalog. */
  readonly ann: AnnIndex;
  readonly candidates: CandidateCache;
}

export const annRetriever: Retriever<AnnSource> = {
  name: 'ann',
  async retrieve(source, q) {
    const { want, need } = wanted(source, q);
    const rows = q.seen ? unseen(await candidates(source, q, q.seen, want), q.seen) : source.ann.searchKnn(rowArray(q.vector, 0, q.vector.length, scratch), Math.min(need, source.ann.getCurrentCount())).neighbors;
    // The graph search came back short (tiny or pathological catalog): answer exactly instead.
    if (rows.length < want) return exactRetriever.retrieve(source, q);
    return { items: rank(source, q.vector, rows, q.k), retrieval: 'ann' };
  },
};

const scratch: number[] = [];

/**
 * The user's cached candidates while `want` of them are still unseen; else one search for the
 * top max(k, ANN_CANDIDATES) = c unseen items (unseen-search.ts: over-fetching by up to c more
 * for the seen items that may be among the nearest), on a search thread when the version has
 * one, cached for the next answers unless the user's vector moved meanwhile.
 */
async function candidates(source: AnnSource, q: RetrievalQuery, seen: SeenFilter, want: number): Promise<Int32Array> {
  const cache = q.cache !== false;
  const cached = cache ? source.candidates.get(q.row) : undefined;
  if (cached && countUnseen(cached, seen) >= want) return cached;
  // (The index may hold fewer than nItems: an added item still being placed.)
  const indexed = Math.min(source.nItems, source.ann.getCurrentCount());
  const c = Math.min(Math.max(q.k, ANN_CANDIDATES), indexed);
  const stamp = q.candidateStamp ?? source.candidates.stamp(q.row);
  const flying = cache ? source.candidates.inFlight(q.row, c, stamp) : undefined;
  if (flying) {
    const found = await flying;
    if (countUnseen(found, seen) >= want) return found;
  }
  const search = source.ann.searchUnseen(q.vector, c, Math.min(indexed, c + Math.min(seen.count, c)), want, () => seen.rows?.(), (row) => seen.has(row));
  if (cache) source.candidates.fly(q.row, c, stamp, search);
  const found = await search;
  if (cache) source.candidates.set(q.row, found, stamp);
  return found;
}

function countUnseen(items: Int32Array, seen: SeenFilter): number {
  let n = 0;
  for (let i = 0; i < items.length; i++) if (!seen.has(items[i])) n++;
  return n;
}
