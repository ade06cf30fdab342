/**
 * Item-to-item neighbors (issue 18, GET /items/{id}/neighbors): the items whose student vectors
 * score highest against the item's own (inner product, the index's space), itself left out, with
 * the same request filters as /recommend and hidden items out; a narrow `labels` filter is
 * scored whole, else the ANN path (its per-user candidate cache unused) or exact.
 */
import type { RetrievalName } from '../common/schemas.js';
import { rank, type ItemFilter } from '../retrieval/retriever.js';
import { itemFilter, RETRIEVERS, type RequestFilters } from './recommender.js';
import type { ServingModel } from './serving-model.js';

export async function itemNeighbors(m: ServingModel, row: number, k: number, retrieval: RetrievalName, filters?: RequestFilters): Promise<{ retrieval: RetrievalName; items: { item: string; score: number }[] }> {
  const d = m.dim;
  const vector = m.itemVectors.slice(row * d, (row + 1) * d);
  // No user: no seen items, no dislikes.
  const f = itemFilter(m, '', undefined, false, filters);
  const filter: ItemFilter = {
    count: (f?.count ?? 0) + (f?.has(row) ? 0 : 1),
    has: (i) => i === row || (f?.has(i) ?? false),
    allowed: f?.allowed?.filter((r) => r !== row),
  };
  const r = filter.allowed
    ? { items: rank(m, vector, filter.allowed, k), retrieval: 'exact' as const }
    : await RETRIEVERS[retrieval].retrieve(m, { row: -1, vector, k, seen: filter, cache: false });
  return { retrieval: r.retrieval, items: r.items.map((x) => ({ item: m.itemIds[x.row], score: x.score })) };
}
