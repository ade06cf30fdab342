/**
 * Issue 18's item endpoints: GET /items/{id}/neighbors (public, like /recommend) and, with the
 * token, GET /items/{id}; with online learning PUT /items/{id} (add or replace an item from its
 * features: logged, then placed by the version's item encoder, server/online/item-placer.ts) and
 * DELETE /items/{id} (logged, then hidden from every answer).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { ErrorReplies, ID_PATTERN, ItemInfo, ItemPutBody, ItemPutReply, Neighbors, NeighborsQuery, type RetrievalName } from '../common/schemas.js';
import { cannotPlace } from '../online/item-placer.js';
import { MAX_RECORD_BYTES, recordFits } from '../../repository/interaction-log.js';
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

/** The path's item id, checked, and the served version; null once the 400 or 503 is sent. */
function idAndModel(holder: ModelHolder, params: unknown, reply: FastifyReply): { id: string; m: ServingModel } | null {
  const id = (params as { id: string }).id;
  const bad = idProblem(id);
  if (bad) {
    void reply.code(400).send(bad);
    return null;
  }
  const m = holder.model;
  if (!m) {
    void reply.code(503).send({ error: 'Service Unavailable', message: 'no model version loaded yet' });
    return null;
  }
  return { id, m };
}

const notFound = (m: ServingModel, id: string) => ({ error: 'Not Found', message: `item ${JSON.stringify(id.slice(0, 80))} is not in the served catalog (version ${m.version})` });

/**
 * The features of a PUT checked against the served version's encoder: every modality present,
 * none unknown, each of its width and finite (JSON has no NaN, but 1e999 parses to Infinity).
 * A version without an encoder (a bundle item's PUT) takes them as they are, for the retrain.
 */
function checkFeatures(raw: Record<string, number[]>, modalities: readonly { name: string; dim: number }[] | undefined): { features: Record<string, Float32Array> } | { error: string; message: string; field: string } {
  const bad = (field: string, message: string) => ({ error: 'Bad Request', message: `${field}: ${message}`, field });
  const names = Object.keys(raw);
  const known = modalities ?? names.map((name) => ({ name, dim: raw[name].length }));
  for (const n of names) {
    if (!known.some((md) => md.name === n)) return bad(`body.features.${n.slice(0, 64)}`, `unknown modality (this version has ${known.map((md) => md.name).join(', ') || 'none'})`);
  }
  const features: Record<string, Float32Array> = Object.create(null);
  for (const md of known) {
    const v = Object.hasOwn(raw, md.name) ? raw[md.name] : undefined;
    if (!v) return bad(`body.features.${md.name}`, `missing: every modality of the version is needed (${known.map((k) => `${k.name}[${k.dim}]`).join(', ')})`);
    if (v.length !== md.dim) return bad(`body.features.${md.name}`, `expected ${md.dim} values, got ${v.length}`);
    const f = Float32Array.from(v);
    const at = f.findIndex((x) => !Number.isFinite(x));
    if (at >= 0) return bad(`body.features.${md.name}.${at}`, `must be a finite number within float32 range (got ${v[at]})`);
    features[md.name] = f;
  }
  return { features };
}

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
    app.put('/items/:id', { schema: { body: ItemPutBody, response: { 200: ItemPutReply, 409: ErrorReplies[400], ...ErrorReplies } } }, async (req, reply) => {
      const target = idAndModel(o.holder, req.params, reply);
      if (!target) return reply;
      const { id, m } = target;
      const row = m.itemIndex.get(id);
      const fromFeatures = row === undefined || row >= m.bundleItems;
      const why = fromFeatures ? cannotPlace(m) : null;
      if (why) return reply.code(409).send({ error: 'Conflict', message: why });
      const checked = checkFeatures(req.body.features, m.embedder?.modalities);
      if ('field' in checked) return reply.code(400).send(checked);
      if (!recordFits({ user: '', item: id, ts: Date.now(), kind: 'item_put', features: checked.features, labels: req.body.labels })) {
        return reply.code(400).send({ error: 'Bad Request', message: `body.features: the item's features and labels are too large for one log record (${MAX_RECORD_BYTES} bytes)`, field: 'body.features' });
      }
      const r = await online.putItem(id, checked.features, req.body.labels ?? []);
      return { item: id, model_version: r.version, row: r.row, created: r.created, placed_from_features: fromFeatures, log_position: r.log_position };
    });
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
    const target = idAndModel(o.holder, req.params, reply);
    if (!target) return reply;
    const { id, m } = target;
    const row = m.itemIndex.get(id);
    if (row === undefined) return reply.code(404).send(notFound(m, id));
    return {
      item: id,
      model_version: m.version,
      row,
      in_bundle: row < m.manifest.counts.items,
      hidden: m.catalog.hidden.has(row),
      deleted: m.catalog.deleted.has(row),
      labels: m.catalog.labels.get(row) ?? [],
      popularity: row < m.popularity.length ? m.popularity[row] : 0,
    };
  });
};
