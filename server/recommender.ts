/**
 * Top-k for one user on one model version: ANN (HNSW) or exact (ONNX), seen items filtered,
 * scores recomputed as the student's dot product so both paths report the same numbers;
 * unknown users and users without history get the most popular items (cold start).
 */
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

function sortedHas(a: Int32Array, x: number): boolean {
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] === x) return true;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function coldStart(model: ServingModel, user: string, k: number, retrieval: Retrieval, seen: Int32Array, excludeSeen: boolean): Recommendation {
  const items: ScoredItem[] = [];
  for (let i = 0; i < model.popularOrder.length && items.length < k; i++) {
    const row = model.popularOrder[i];
    if (excludeSeen && sortedHas(seen, row)) continue;
    // Score of a cold-start item: its train popularity (interactions), not a dot product.
    items.push({ item: model.itemIds[row], score: model.popularity[row] });
  }
  return { user, model_version: model.version, retrieval, cold_start: true, items };
}

const plainArray = (v: Float32Array): number[] => Array.from(v);

export async function recommend(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: Retrieval): Promise<Recommendation> {
  const row = model.userIndex.get(user);
  const seen = row === undefined ? new Int32Array(0) : model.seenOf(row);
  if (row === undefined || seen.length === 0) return coldStart(model, user, k, retrieval, seen, excludeSeen);

  const vector = model.userVector(row);
  const want = Math.min(k, model.nItems - (excludeSeen ? seen.length : 0));
  const need = Math.min(model.nItems, k + (excludeSeen ? seen.length : 0));
  let rows: ArrayLike<number>;
  let used: Retrieval = retrieval;
  if (retrieval === 'ann') {
    rows = model.ann.searchKnn(plainArray(vector), need).neighbors;
  } else {
    rows = (await model.exact.topK(vector, need)).rows;
  }
  let picked = filterSeen(rows, seen, excludeSeen);
  if (picked.length < want && retrieval === 'ann') {
    // The graph search came back short (tiny or pathological catalog): answer exactly instead.
    picked = filterSeen((await model.exact.topK(vector, need)).rows, seen, excludeSeen);
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

function filterSeen(rows: ArrayLike<number>, seen: Int32Array, excludeSeen: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i++) if (!excludeSeen || !sortedHas(seen, rows[i])) out.push(rows[i]);
  return out;
}
