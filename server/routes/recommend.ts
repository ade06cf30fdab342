/** GET /recommend (one user, through the version's result cache) and POST /recommend (a batch of users). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { ServerMetrics } from '../common/metrics.js';
import { ErrorReplies, RecommendBatch, RecommendBody, RecommendQuery, Recommendation, type RetrievalName } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';
import { recommend, recommendJson } from '../serving/recommender.js';
import type { ServingModel } from '../serving/serving-model.js';

export interface RecommendRoutesOptions {
  holder: ModelHolder;
  metrics: ServerMetrics;
  /** The path of requests that name none. */
  retrieval: RetrievalName;
}

export const recommendRoutes: FastifyPluginAsyncTypebox<RecommendRoutesOptions> = async (app, o) => {
  /** Runs fn on the current version, holding it until fn is done (so a swap never pulls it away). */
  async function withModel<T>(reply: FastifyReply, fn: (m: ServingModel) => Promise<T>): Promise<T | FastifyReply> {
    const m = o.holder.acquire();
    if (!m) return reply.code(503).send({ error: 'Service Unavailable', message: 'no model version loaded yet' });
    try {
      return await fn(m);
    } finally {
      o.holder.release(m);
    }
  }

  const served = (retrieval: RetrievalName, coldStart: boolean) => {
    o.metrics.recommendations.inc({ retrieval });
    if (coldStart) o.metrics.coldStarts.inc();
  };

  app.get('/recommend', { schema: { querystring: RecommendQuery, response: { 200: Recommendation, ...ErrorReplies } } }, async (req, reply) =>
    withModel(reply, async (m) => {
      const q = req.query;
      // Serialized by the response schema once, then cached as text with the list.
      const r = await recommendJson(m, q.user, q.k, q.exclude_seen, q.retrieval ?? o.retrieval);
      served(r.retrieval, r.coldStart);
      return reply.type('application/json; charset=utf-8').send(r.json as never);
    }),
  );

  app.post('/recommend', { schema: { body: RecommendBody, response: { 200: RecommendBatch, ...ErrorReplies } } }, async (req, reply) =>
    withModel(reply, async (m) => {
      const b = req.body;
      const results = await Promise.all(b.users.map((u) => recommend(m, u, b.k, b.exclude_seen, b.retrieval ?? o.retrieval)));
      for (const r of results) served(r.retrieval, r.cold_start);
      return { model_version: m.version, results };
    }),
  );
};
