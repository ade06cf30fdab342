/**
 * POST /recommend/session {items, k, exclude_seen?, retrieval?}: recommendations for an anonymous
 * sequence of item ids (oldest first) on a sequential bundle. At most MAX_SESSION_ITEMS ids (a
 * 400 naming the limit); sequences longer than the bundle's maxLen are cut to the most recent
 * maxLen; an id the served catalog does not hold is a 400 naming it (`items.N`), since a
 * sequence with an item silently dropped would be answered as a different sequence.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerMetrics } from '../common/metrics.js';
import { ErrorReplies, SessionBody, SessionRecommendation, type RetrievalName } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';
import { recommendSession } from '../serving/session.js';

export interface SessionRoutesOptions {
  holder: ModelHolder;
  metrics: ServerMetrics;
  /** The path of requests that name none. */
  retrieval: RetrievalName;
}

export const sessionRoutes: FastifyPluginAsyncTypebox<SessionRoutesOptions> = async (app, o) => {
  app.post('/recommend/session', { schema: { body: SessionBody, response: { 200: SessionRecommendation, ...ErrorReplies } } }, async (req, reply) => {
    const m = o.holder.acquire();
    if (!m) return reply.code(503).send({ error: 'Service Unavailable', message: 'no model version loaded yet' });
    try {
      const b = req.body;
      if (!m.encoder) {
        return reply.code(400).send({ error: 'Bad Request', message: `the served version ${m.version} is not sequential (no sequence.onnx): /recommend/session needs a sasrec bundle; use /recommend?user=` });
      }
      const rows = new Int32Array(b.items.length);
      let unknown = 0;
      let first = -1;
      b.items.forEach((id, i) => {
        const r = m.itemIndex.get(id);
        if (r !== undefined) rows[i] = r;
        else if (unknown++ === 0) first = i;
      });
      if (unknown) {
        const more = unknown > 1 ? `; ${unknown} of the ${b.items.length} items are unknown` : '';
        return reply.code(400).send({ error: 'Bad Request', message: `body.items.${first}: unknown item ${JSON.stringify(b.items[first])} (not in the served catalog${more})`, field: `items.${first}` });
      }
      const r = await recommendSession(m, rows, b.k, b.exclude_seen, b.retrieval ?? o.retrieval);
      o.metrics.recommendations.inc({ retrieval: r.retrieval });
      if (r.cold_start) o.metrics.coldStarts.inc();
      return r;
    } finally {
      o.holder.release(m);
    }
  });
};
