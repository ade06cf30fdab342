/**
 * Top-k for one user on one model version: ANN (HNSW) or exact (ONNX), seen items filtered,
 * scores recomputed as the student's dot product so both paths report the same numbers;
 * unknown users and users without history get the most popular items (cold start).
 */
import fastJson from 'fast-json-stringify';
import { ANN_CANDIDATES, type CachedAnswer } from './result-cache.js';
import { Recommendation as RecommendationSchema } from '../common/schemas.js';
import type { ServingModel } from './serving-model.js';

export type Retrieval = 'ann' | 'exact';

export interface ScoredItem {
  item: string;
  score: number;
}

export interface Recommendation {
  user: string;
  model_version: number;
  retrieval: Retrieval;
  cold_start: boolean;
  items: ScoredItem[];
}

function coldStart(model: ServingModel, user: string, k: number, retrieval: Retrieval, row: number | undefined, excludeSeen: boolean): Recommendation {
  const items: ScoredItem[] = [];
  const userRow = row;
  for (let i = 0; i < model.popularOrder.length && items.length < k; i++) {
    const row = model.popularOrder[i];
    if (excludeSeen && userRow !== undefined && model.isSeen(userRow, row)) continue;
    // Score of a cold-start item: its train popularity (interactions), not a dot product.
    items.push({ item: model.itemIds[row], score: model.popularity[row] });
  }
  return { user, model_version: model.version, retrieval, cold_start: true, items };
}

const plainArray = (v: Float32Array): number[] => Array.from(v);

const serializeRecommendation = fastJson(RecommendationSchema);

/**
 * recommend() serialized by the response schema, through the version's result cache (known
 * users only: unknown ones are cheap to answer and unbounded in number).
 */
export async function recommendJson(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: Retrieval): Promise<CachedAnswer> {
  const known = model.userIndex.has(user);
  const key = `${k}|${excludeSeen ? 1 : 0}|${retrieval}`;
  const hit = known ? model.cache.get(user, key) : undefined;
  if (hit) return hit;
  const stamp = model.cache.stamp(user);
  const r = await recommend(model, user, k, excludeSeen, retrieval);
  const answer = { json: serializeRecommendation(r), retrieval: r.retrieval, coldStart: r.cold_start };
  // Not cached if the user or the items changed while the answer was computed (exact awaits ONNX).
  if (known) model.cache.set(user, key, answer, stamp);
  return answer;
}

export async function recommend(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: Retrieval): Promise<Recommendation> {
  const row = model.userIndex.get(user);
  const seenCount = row === undefined ? 0 : model.seenCount(row);
  if (row === undefined || seenCount === 0) return coldStart(model, user, k, retrieval, row, excludeSeen);

  // A copy: online learning may move the user's vector (or grow the table) while we await.
  const vector = model.userVector(row).slice();
  const want = Math.min(k, model.nItems - (excludeSeen ? seenCount : 0));
  const need = Math.min(model.nItems, k + (excludeSeen ? seenCount : 0));
  let rows: ArrayLike<number>;
  let used: Retrieval = retrieval;
  if (retrieval === 'ann' && excludeSeen) {
    // Cached candidates, re-ranked exactly below; else one search for max(k, ANN_CANDIDATES)
    // (hnswlib skips the seen labels during the search: no over-fetching for heavy users).
    let cand = model.candidates.get(row);
    if (!cand || countUnseen(model, row, cand) < want) {
      const c = Math.min(Math.max(k, ANN_CANDIDATES), model.nItems);
      // The filter is a JS call per visited label (~25% of a search): light users over-fetch
      // their few seen items instead; heavy ones filter inside hnswlib.
      cand =
        seenCount <= c / 2
          ? Int32Array.from(model.ann.searchKnn(plainArray(vector), Math.min(model.nItems, c + seenCount)).neighbors)
          : Int32Array.from(model.ann.searchKnn(plainArray(vector), c, (label: number) => !model.isSeen(row, label)).neighbors);
      model.candidates.set(row, cand);
    }
    rows = cand;
  } else if (retrieval === 'ann') {
    rows = model.ann.searchKnn(plainArray(vector), need).neighbors;
  } else {
    rows = (await model.exact.topK(vector, need)).rows;
  }
  const seen = (item: number) => excludeSeen && model.isSeen(row, item);
  let picked = filterSeen(rows, seen);
  if (picked.length < want && retrieval === 'ann') {
    // The graph search came back short (tiny or pathological catalog): answer exactly instead.
    picked = filterSeen((await model.exact.topK(vector, need)).rows, seen);
    used = 'exact';
  }
  const items = picked.map((r) => ({ row: r, score: model.score(vector, r) }));
  items.sort((a, b) => b.score - a.score || a.row - b.row);
  return {
    user,
    model_version: model.version,
    retrieval: used,
    cold_start: false,
    items: items.slice(0, k).map((x) => ({ item: model.itemIds[x.row], score: x.score })),
  };
}

function countUnseen(model: ServingModel, row: number, items: Int32Array): number {
  let n = 0;
  for (let i = 0; i < items.length; i++) if (!model.isSeen(row, items[i])) n++;
  return n;
}

function filterSeen(rows: ArrayLike<number>, seen: (item: number) => boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i++) if (!seen(rows[i])) out.push(rows[i]);
  return out;
}
