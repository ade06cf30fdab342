/**
 * The ANN retrieval path: hnswlib search (seen items skipped inside the search for heavy users),
 * the candidates cached per user and re-ranked by the student's score; exact when the search
 * comes back short.
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
    const rows = q.seen ? unseen(candidates(source, q, q.seen, want), q.seen) : source.ann.searchKnn(plainArray(q.vector), need).neighbors;
    // The graph search came back short (tiny or pathological catalog): answer exactly instead.
    if (rows.length < want) return exactRetriever.retrieve(source, q);
    return { items: rank(source, q.vector, rows, q.k), retrieval: 'ann' };
  },
};

const plainArray = (v: Float32Array): number[] => Array.from(v);

/**
 * The user's cached candidates while `want` of them are still unseen; else one search for
 * max(k, ANN_CANDIDATES) unseen items (hnswlib skips the seen labels during the search: no
 * over-fetching for heavy users), cached for the next answers.
 */
function candidates(source: AnnSource, q: RetrievalQuery, seen: SeenFilter, want: number): Int32Array {
  const cached = source.candidates.get(q.row);
  if (cached && countUnseen(cached, seen) >= want) return cached;
  const c = Math.min(Math.max(q.k, ANN_CANDIDATES), source.nItems);
  // The filter is a JS call per visited label (~25% of a search): light users over-fetch
  // their few seen items instead; heavy ones filter inside hnswlib.
  const found =
    seen.count <= c / 2
      ? Int32Array.from(source.ann.searchKnn(plainArray(q.vector), Math.min(source.nItems, c + seen.count)).neighbors)
      : Int32Array.from(source.ann.searchKnn(plainArray(q.vector), c, (label: number) => !seen.has(label)).neighbors);
  source.candidates.set(q.row, found);
  return found;
}

function countUnseen(items: Int32Array, seen: SeenFilter): number {
  let n = 0;
  for (let i = 0; i < items.length; i++) if (!seen.has(items[i])) n++;
  return n;
}
