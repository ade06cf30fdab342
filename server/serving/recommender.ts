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
import type { Retriever, SeenFilter } from '../retrieval/retriever.js';
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

function coldStart(model: ServingModel, user: string, k: number, retrieval: RetrievalName, row: number | undefined, excludeSeen: boolean): Recommendation {
  const skip = excludeSeen && row !== undefined ? (item: number) => model.isSeen(row, item) : undefined;
  return { user, model_version: model.version, retrieval, cold_start: true, items: popularItems(model, k, skip) };
}

const serializeRecommendation = fastJson(RecommendationSchema);

/**
 * recommend() serialized by the response schema, through the version's result cache (known
 * users only: unknown ones are cheap to answer and unbounded in number).
 */
export async function recommendJson(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: RetrievalName): Promise<CachedAnswer> {
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

export async function recommend(model: ServingModel, user: string, k: number, excludeSeen: boolean, retrieval: RetrievalName): Promise<Recommendation> {
  const row = model.userIndex.get(user);
  const seenCount = row === undefined ? 0 : model.seenCount(row);
  if (row === undefined || seenCount === 0) return coldStart(model, user, k, retrieval, row, excludeSeen);

  // The table's row (copied) or the encoder's vector of the user's sequence (user-vector-source.ts).
  const got = model.vectors.vectorOf(row);
  const vector = got instanceof Promise ? await got : got;
  if (!vector) return coldStart(model, user, k, retrieval, row, excludeSeen);
  const seen: SeenFilter | undefined = excludeSeen ? { count: seenCount, has: (item) => model.isSeen(row, item) } : undefined;
  const r = await RETRIEVERS[retrieval].retrieve(model, { row, vector, k, seen });
  return {
    user,
    model_version: model.version,
    retrieval: r.retrieval,
    cold_start: false,
    items: r.items.map((x) => ({ item: model.itemIds[x.row], score: x.score })),
  };
}
