/**
 * GET /healthz (the process answers) and GET /readyz (a model version is loaded, and which; 503
 * while loading or draining; "degraded" while a shared log cannot be read: answers then come
 * from the last state and writes are refused).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Ready } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';
import type { StreamFollower } from '../online/stream-follower.js';

export const healthRoutes: FastifyPluginAsyncTypebox<{ holder: ModelHolder; draining: () => boolean; pin?: () => { pinned: number | null; problem: string | null }; follower?: () => StreamFollower | null }> = async (app, o) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { 200: Ready, 503: Ready } } }, async (_req, reply) => {
    // A draining process answers what it has received, but a balancer should send no more.
    if (o.draining()) return reply.code(503).send({ status: 'draining' });
    const m = o.holder.model;
    if (!m) return reply.code(503).send({ status: 'loading' });
    const pin = o.pin?.();
    const f = o.follower?.();
    return {
      status: f?.degraded ? 'degraded' : 'ready',
      ...(pin ? { pinned: pin.pinned, ...(pin.problem ? { pin_problem: pin.problem } : {}) } : {}),
      ...(f ? { log: { kind: 'redis', degraded: f.degraded, applied: m.appliedPosition, lag: f.lag, ...(f.lastError ? { error: f.lastError } : {}) } } : {}),
      model: { name: m.name, version: m.version, items: m.nItems, users: m.nUsers, dim: m.dim, provider: m.exact.provider, ef: m.ef, dataset: m.manifest.dataset.name },
    };
  });
};
