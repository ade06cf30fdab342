/**
 * The one interface of the retrieval paths (ann.ts, exact.ts): a user's vector, k and the seen
 * filter in; the top items with the student's scores out, the same numbers on every path.
 */
import type { RetrievalName } from '../common/schemas.js';

/** The part of a served version every path reads: the item table, through the student's score. */
export interface ItemTable {
  readonly nItems: number;
  /** The student's score: dot product of the user's and the item's vectors. */
  score(user: Float32Array, itemRow: number): number;
}

/**
 * Items to leave out of an answer, composed per request (server/serving/recommender.ts): the
 * user's seen items, and (issue 18) the request's `exclude` and label filters, hidden items,
 * the user's dislikes.
 */
export interface ItemFilter {
  /** how many item rows the filter leaves out (exact: a path asks for k + count rows so that k survive) */
  readonly count: number;
  has(item: number): boolean;
  /** Every row the filter lets through, when it is a short list (a narrow `labels` filter): scanning them is cheaper than any search. */
  readonly allowed?: number[];
  /** Every row it leaves out, as a list (duplicates allowed), where the filter can say: what a search thread needs instead of has(). */
  rows?(): Int32Array;
}
/** The filter's older name (the seen items alone). */
export type SeenFilter = ItemFilter;

export interface RetrievalQuery {
  /** The user's row: the key of per-user state (ANN candidates). */
  row: number;
  /** The user's vector; the caller's copy, so online learning cannot move it during the search. */
  vector: Float32Array;
  k: number;
  /** Absent: every item may be recommended. */
  seen?: ItemFilter;
  /**
   * false: the ANN path neither reads nor stores the user's cached candidates (a request's own
   * filters: candidates found under them are not the user's for the next request). Default true.
   */
  cache?: boolean;
  /**
   * The user's candidate-cache stamp (CandidateCache.stamp), taken before the vector was: a
   * sequential version's vector is computed by an encoder (awaited), during which the user may
   * move. Default: taken when the search starts.
   */
  candidateStamp?: string;
}

export interface ScoredRow {
  row: number;
  score: number;
}

export interface Retrieved {
  /** At most k items, best first (ties by lower row). */
  items: ScoredRow[];
  /** The path that answered (ANN falls back to exact when its search comes back short). */
  retrieval: RetrievalName;
}

export interface Retriever<Source extends ItemTable> {
  readonly name: RetrievalName;
  retrieve(source: Source, q: RetrievalQuery): Promise<Retrieved>;
}

/** Items the user may get (k capped by the unseen catalog) and rows to ask a path for so that k survive the filter. */
export function wanted(source: ItemTable, q: RetrievalQuery): { want: number; need: number } {
  const seen = q.seen?.count ?? 0;
  return { want: Math.min(q.k, source.nItems - seen), need: Math.min(source.nItems, q.k + seen) };
}

export function unseen(rows: ArrayLike<number>, seen: SeenFilter | undefined): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i++) if (!seen?.has(rows[i])) out.push(rows[i]);
  return out;
}

/**
 * The top k of the candidate rows by the student's score, recomputed here so that every path
 * reports the same numbers (ONNX's and hnswlib's own scores differ in the last bits).
 */
export function rank(source: ItemTable, vector: Float32Array, rows: number[], k: number): ScoredRow[] {
  const items = rows.map((r) => ({ row: r, score: source.score(vector, r) }));
  items.sort((a, b) => b.score - a.score || a.row - b.row);
  return items.slice(0, k);
}
