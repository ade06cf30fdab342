/**
 * Recommendations for an anonymous sequence (POST /recommend/session) on a sequential version:
 * the encoder on the sequence's last maxLen items, then the same retrieval paths as a user's
 * answer, the sequence's own items left out unless asked otherwise. An empty sequence gets the
 * popularity ranking (cold start), as a user without history does.
 */
import type { RetrievalName, SessionRecommendation } from '../common/schemas.js';
import type { AnnSource } from '../retrieval/ann.js';
import { CandidateCache } from '../retrieval/candidate-cache.js';
import { popularItems, RETRIEVERS } from './recommender.js';
import type { ServingModel } from './serving-model.js';

/** A session has no row to keep ANN candidates under: a cache of size 0 stores nothing. */
const NO_CANDIDATES = new CandidateCache(0);

/** The version's item table and indexes, without its per-user candidate cache. */
function sessionSource(m: ServingModel): AnnSource {
  return { nItems: m.nItems, score: (u, r) => m.score(u, r), exact: m.exact, ann: m.ann, candidates: NO_CANDIDATES };
}

/** `rows`: the session's item rows, oldest first (checked against the catalog by the caller). The version must be sequential. */
export async function recommendSession(m: ServingModel, rows: Int32Array, k: number, excludeSeen: boolean, retrieval: RetrievalName): Promise<SessionRecommendation> {
  const encoder = m.encoder;
  if (!encoder) throw new Error(`version ${m.version} is not sequential`);
  const given = new Set(rows);
  const skip = excludeSeen && given.size > 0 ? (row: number) => given.has(row) : undefined;
  if (rows.length === 0) return { model_version: m.version, retrieval, cold_start: true, items: popularItems(m, k, skip) };
  const vector = await encoder.encode(rows.length > encoder.maxLen ? rows.subarray(rows.length - encoder.maxLen) : rows);
  const r = await RETRIEVERS[retrieval].retrieve(sessionSource(m), { row: -1, vector, k, seen: skip && { count: given.size, has: skip } });
  return { model_version: m.version, retrieval: r.retrieval, cold_start: false, items: r.items.map((x) => ({ item: m.itemIds[x.row], score: x.score })) };
}
