/**
 * Top-k for one user on one model version through the retrieval path asked for (ANN or exact,
 * picked by name), seen items filtered; unknown users and users without history get the most
 * popular items (cold start). The user's vector comes from the version's vector source (its
 * table row, or a sequential bundle's encoder on the live sequence). Answers can be serialized
 * and cached per version.
 */
import fastJson from 'fast-json-stringify';
import type { CachedAnswer } from './result-cache.js';
import { Recommendation as RecommendationSchema, type Recommendation, type RetrievalName } from '../common/schemas.js';
import { annRetriever, type AnnSource } from '../retrieval/ann.js';
import { exactRetriever } from '../retrieval/exact.js';
import { rank, type ItemFilter, type Retriever } from '../retrieval/retriever.js';
import type { ServingModel } from './serving-model.js';

/** Every retrieval name the API accepts has its path here (the compiler checks the record is complete). */
export const RETRIEVERS: Record<RetrievalName, Retriever<AnnSource>> = { ann: annRetriever, exact: exactRetriever };

/** The k most popular items but those `skip` names: the cold-start answer. */
export function popularItems(model: ServingModel, k: number, skip?: (row: number) => boolean): Recommendation['items'] {
  const items: Recommendation['items'] = [];
  for (let i = 0; i < model.popularOrder.length && items.length < k; i++) {
    const row = model.popularOrder[i];
    if (skip?.(row)) continue;
    // Score of a cold-start item: its train popularity (interactions), not a dot product.
    items.push({ item: model.itemIds[row], score: model.popularity[row] });
  }
  return items;
}

/** A request's own filters (issue 18): item ids to leave out, labels an item must carry one of, labels it must carry none of. */
export interface RequestFilters {
  exclude?: readonly string[];
  labels?: readonly string[];
  excludeLabels?: readonly string[];
}

/** Whether the request names any filter of its own (its answer is then neither cached nor read from the cache). */
export function hasRequestFilters(f: RequestFilters | undefined): boolean {
  return !!f && !!(f.exclude?.length || f.labels?.length || f.excludeLabels?.length);
}

/**
 * The one item filter of a request: seen items (with exclude_seen), the user's dislikes, hidden
 * items, the request's `exclude`, `labels` (keep only items with one of them) and
 * `exclude_labels`; its count is the exact number of rows it leaves out, so that the paths
 * over-fetch by enough to return k items whenever the catalog allows. Undefined when it leaves
 * out nothing. Without request filters, dislikes or hidden items it is the seen filter as before.
 */
export function itemFilter(model: ServingModel, user: string, row: number | undefined, excludeSeen: boolean, f?: RequestFilters): ItemFilter | undefined {
  const cat = model.catalog;
  const seenRow = excludeSeen && row !== undefined ? row : undefined;
  const seenCount = seenRow === undefined ? 0 : model.seenCount(seenRow);
  const isSeen = seenRow === undefined ? null : (i: number) => model.isSeen(seenRow, i);
  const dis = cat.dislikesOf(user);
  const hidden = cat.hidden;
  const own = hasRequestFilters(f);
  const seenRows = (): RowSet[] => (seenRow === undefined ? [] : [model.seenOf(seenRow), model.extraSeen.get(seenRow) ?? NO_ROWS]);
  if (!own && !dis?.size && !hidden.size) return isSeen ? { count: seenCount, has: isSeen, rows: () => rowList(seenRows()) } : undefined;

  // Rows out for reasons other than the seen set and the `labels` whitelist.
  const out = new Set<number>(hidden);
  for (const r of dis ?? []) out.add(r);
  for (const id of f?.exclude ?? []) {
    const r = model.itemIndex.get(id);
    if (r !== undefined) out.add(r);
  }
  if (f?.excludeLabels?.length) for (const r of cat.rowsWithAny(f.excludeLabels)) out.add(r);
  const keep = f?.labels?.length ? cat.rowsWithAny(f.labels) : null;
  const has = (i: number) => (keep !== null && !keep.has(i)) || out.has(i) || (isSeen !== null && isSeen(i));
  let count: number;
  let allowed: number[] | undefined;
  if (keep) {
    allowed = [];
    for (const r of keep) if (!out.has(r) && !(isSeen && isSeen(r))) allowed.push(r);
    count = model.nItems - allowed.length;
    if (allowed.length > ALLOWED_SCAN) allowed = undefined;
  } else {
    count = out.size;
    if (seenRow !== undefined) {
      const base = model.seenOf(seenRow);
      for (let n = 0; n < base.length; n++) if (!out.has(base[n])) count++;
      for (const r of model.extraSeen.get(seenRow) ?? []) if (!out.has(r)) count++;
    }
  }
  // (A `labels` whitelist is no list of rows left out: such a search stays on the event loop.)
  return { count, has, allowed, rows: keep ? undefined : () => rowList([out, ...seenRows()]) };
}

/** The rows of several collections as one list (duplicates kept: a search thread marks them in a bitmap). */
type RowSet = Int32Array | ReadonlySet<number>;
const NO_ROWS: ReadonlySet<number> = new Set();

function rowList(parts: RowSet[]): Int32Array {
  let n = 0;
  for (const p of parts) n += p instanceof Int32Array ? p.length : p.size;
  const out = new Int32Array(n);
  let i = 0;
  for (const p of parts) {
    if (p instanceof Int32Array) {
      out.set(p, i);
      i += p.length;
    } else for (const r of p) out[i++] = r;
  }
  return out;
}

/**
 * A `labels` filter that lets at most this many rows through is answered by scoring them all
 * (the student's dot product, exact): 4096 × dim 64 is about 0.1 ms, where a search past the
 * other 90% of a catalog costs more and may still fall back to the exact path.
 */
const ALLOWED_SCAN = 4096;

function coldStart(model: ServingModel, user: string, k: number, retrieval: RetrievalName, filter: ItemFilter | undefined): Recommendation {
  return { user, model_version: model.version, retrieval, cold_start: true, items: popularItems(model, k, filter && ((row) => filter.has(row))) };
}

const serializeRecommendation = fastJson(RecommendationSchema);

/**
 * recommend() serialized by the response schema, through the version's result cache (known
 * users only: unknown ones are cheap to answer and unbounded in number; and not for a request
 * with filters of its own, whose answers are its own).
 */
export async function recommendJson(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: RetrievalName, filters?: RequestFilters): Promise<CachedAnswer> {
  const cacheable = model.userIndex.has(user) && !hasRequestFilters(filters);
  const key = `${k}|${excludeSeen ? 1 : 0}|${retrieval}`;
  const hit = cacheable ? model.cache.get(user, key) : undefined;
  if (hit) return hit;
  const stamp = model.cache.stamp(user);
  const r = await recommend(model, user, k, excludeSeen, retrieval, filters);
  const answer = { json: serializeRecommendation(r), retrieval: r.retrieval, coldStart: r.cold_start };
  // Not cached if the user or the items changed while the answer was computed (exact awaits ONNX).
  if (cacheable) model.cache.set(user, key, answer, stamp);
  return answer;
}

export async function recommend(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: RetrievalName, filters?: RequestFilters): Promise<Recommendation> {
  const row = model.userIndex.get(user);
  const seenCount = row === undefined ? 0 : model.seenCount(row);
  const filter = itemFilter(model, user, row, excludeSeen, filters);
  if (row === undefined || seenCount === 0) return coldStart(model, user, k, retrieval, filter);

  // Before the vector: a sequential version's comes from an awaited encoder run, during which the user may move.
  const candidateStamp = model.candidates.stamp(row);
  // The table's row (copied) or the encoder's vector of the user's sequence (user-vector-source.ts).
  const got = model.vectors.vectorOf(row);
  const vector = got instanceof Promise ? await got : got;
  if (!vector) return coldStart(model, user, k, retrieval, filter);
  const r = filter?.allowed
    ? { items: rank(model, vector, filter.allowed, k), retrieval: 'exact' as const }
    : // (Candidates are the user's unseen items: one asked for with its seen items has them of its own.)
      await RETRIEVERS[retrieval].retrieve(model, { row, vector, k, seen: filter, cache: excludeSeen && !hasRequestFilters(filters), candidateStamp });
  return {
    user,
    model_version: model.version,
    retrieval: r.retrieval,
    cold_start: false,
    items: r.items.map((x) => ({ item: model.itemIds[x.row], score: x.score })),
  };
}
