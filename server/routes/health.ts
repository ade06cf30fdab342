/** GET /healthz (the process answers) and GET /readyz (a model version is loaded, and which). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Ready } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';

export const healthRoutes: FastifyPluginAsyncTypebox<{ holder: ModelHolder }> = async (app, o) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { 200: Ready, 503: Ready } } }, async (_req, reply) => {
    const m = o.holder.model;
    if (!m) return reply.code(503).send({ status: 'loading' });
    return {
      status: 'ready',
      model: { name: m.name, version: m.version, items: m.nItems, users: m.nUsers, dim: m.dim, provider: m.exact.provider, ef: m.ef, dataset: m.manifest.dataset.name },
    };
  });
};
