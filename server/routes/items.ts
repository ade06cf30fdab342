/**
 * Issue 18's item endpoints built so far: GET /items/{id}/neighbors (public, like /recommend)
 * and GET /items/{id} (token); DELETE /items/{id} (token, with online learning: logged, then hidden
 * from every answer). PUT /items is not built yet.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorReplies, ID_PATTERN, ItemInfo, Neighbors, NeighborsQuery, type RetrievalName } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';
import { itemNeighbors } from '../serving/neighbors.js';
import type { ServingModel } from '../serving/serving-model.js';
import type { OnlineLearner } from '../online/online-learner.js';
import { queryFilters } from './recommend.js';

const ID_RE = new RegExp(ID_PATTERN, 'u');

/** The path's item id checked (1–256 characters, no control characters): null and a 400 body otherwise. */
function idProblem(id: string): { error: string; message: string; field: string } | null {
  if (id.length === 0 || id.length > 256 || !ID_RE.test(id)) {
    return { error: 'Bad Request', message: `params.id: an item id is 1 to 256 characters without control characters (got ${id.length} characters)`, field: 'id' };
  }
  return null;
}

const notFound = (m: ServingModel, id: string) => ({ error: 'Not Found', message: `item ${JSON.stringify(id.slice(0, 80))} is not in the served catalog (version ${m.version})` });

export const neighborRoutes: FastifyPluginAsyncTypebox<{ holder: ModelHolder; retrieval: RetrievalName }> = async (app, o) => {
  app.get('/items/:id/neighbors', { schema: { querystring: NeighborsQuery, response: { 200: Neighbors, 404: ErrorReplies[400], ...ErrorReplies } } }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const bad = idProblem(id);
    if (bad) return reply.code(400).send(bad);
    const filters = queryFilters(req.query);
    if ('field' in filters) return reply.code(400).send(filters);
    const m = o.holder.acquire();
    if (!m) return reply.code(503).send({ error: 'Service Unavailable', message: 'no model version loaded yet' });
    try {
      const row = m.itemIndex.get(id);
      if (row === undefined || m.catalog.hidden.has(row)) return reply.code(404).send(notFound(m, id));
      const r = await itemNeighbors(m, row, req.query.k, req.query.retrieval ?? o.retrieval, filters);
      return { item: id, model_version: m.version, ...r };
    } finally {
      o.holder.release(m);
    }
  });
};

export const itemRoutes: FastifyPluginAsyncTypebox<{ holder: ModelHolder; online?: OnlineLearner }> = async (app, o) => {
  const online = o.online;
  if (online) {
    app.delete('/items/:id', async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const bad = idProblem(id);
      if (bad) return reply.code(400).send(bad);
      try {
        const r = await online.deleteItem(id);
        return { item: id, hidden: true, already_hidden: r.already, log_position: r.log_position };
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code === 404) return reply.code(404).send({ error: 'Not Found', message: (err as Error).message });
        throw err;
      }
    });
  }
  app.get('/items/:id', { schema: { response: { 200: ItemInfo, 404: ErrorReplies[400], ...ErrorReplies } } }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const bad = idProblem(id);
    if (bad) return reply.code(400).send(bad);
    const m = o.holder.model;
    if (!m) return reply.code(503).send({ error: 'Service Unavailable', message: 'no model version loaded yet' });
    const row = m.itemIndex.get(id);
    if (row === undefined) return reply.code(404).send(notFound(m, id));
    return {
      item: id,
      model_version: m.version,
      row,
      in_bundle: row < m.manifest.counts.items,
      hidden: m.catalog.hidden.has(row),
      labels: m.catalog.labels.get(row) ?? [],
      popularity: row < m.popularity.length ? m.popularity[row] : 0,
    };
  });
};
