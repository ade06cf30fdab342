/**
 * The HTTP API (fastify): /recommend (GET one user, POST a batch), /healthz, /readyz, /metrics
 * and, with PROMPTMM_TOKEN set, /admin/reload. Client mistakes get a 400 naming the field;
 * no stack trace ever reaches a client.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { ServerMetrics } from './common/metrics.js';
import type { ModelHolder } from './serving/model-holder.js';
import { recommend, recommendJson } from './serving/recommender.js';
import type { Reloader } from './serving/reloader.js';
import { type RetrievalName, ErrorReply, InteractionsBody, InteractionsReply, Ready, RecommendBatch, RecommendBody, RecommendQuery, Recommendation } from './common/schemas.js';
import type { OnlineLearner } from './online/online-learner.js';
import type { ServingModel } from './serving/serving-model.js';

export interface AppOptions {
  holder: ModelHolder;
  reloader: Reloader;
  metrics: ServerMetrics;
  log: Logger;
  retrieval: RetrievalName;
  /** Bearer token of admin and write endpoints; undefined turns them off. */
  token?: string;
  online?: OnlineLearner;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of "Authorization: Bearer <token>" (digests, so lengths never leak). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  return timingSafeEqual(digest(m ? m[1] : ''), digest(token)) && m !== null;
}

/** The field a validation error is about, e.g. "k" for "querystring/k must be <= 1000". */
function fieldOf(err: FastifyError): string | undefined {
  const v = err.validation?.[0];
  if (!v) return undefined;
  const params = v.params as { missingProperty?: string; additionalProperty?: string } | undefined;
  const missing = params?.missingProperty ?? params?.additionalProperty;
  const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
  return missing ? (path ? `${path}.${missing}` : missing) : path || undefined;
}

export function buildApp(o: AppOptions) {
  const app = Fastify({
    loggerInstance: o.log,
    // A log line per request would cost more than the request; latency goes to /metrics instead.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    bodyLimit: 1 << 20,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // While closing, answer in-flight requests with "Connection: close" so keep-alive sockets end
  // with them (otherwise close() waits for the clients' idle timeouts).
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    app.server.closeIdleConnections();
  });
  // Callback-style hooks: an async hook costs a promise per request, measurable at 20k req/s.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  // One histogram child per (method, route, status), looked up once: labelling each
  // observation hashes the label set every time.
  const durations = new Map<string, { observe: (v: number) => void }>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const key = `${req.method} ${route} ${reply.statusCode}`;
    let h = durations.get(key);
    if (!h) durations.set(key, (h = o.metrics.requestDuration.labels({ method: req.method, route, status_code: String(reply.statusCode) })));
    h.observe(reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) {
      const field = fieldOf(err);
      const v = err.validation[0];
      const allowed = (v.params as { allowedValues?: unknown[] } | undefined)?.allowedValues;
      const detail = `${v.message ?? 'invalid'}${allowed ? ` (${allowed.join(', ')})` : ''}`;
      return reply.code(400).send({ error: 'Bad Request', message: `${err.validationContext ?? 'request'}${field ? '.' + field : ''}: ${detail}`, field });
    }
    const status = err.statusCode && ((err.statusCode >= 400 && err.statusCode < 500) || err.statusCode === 503) ? err.statusCode : 500;
    if (status === 500) {
      req.log.error({ err, url: req.url }, 'request failed');
      return reply.code(500).send({ error: 'Internal Server Error', message: 'internal error (logged on the server)' });
    }
    return reply.code(status).send({ error: STATUS_CODES[status] ?? 'Error', message: err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'Not Found', message: `no route ${req.method} ${req.url.split('?')[0]}` }));

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

  const errors = { 400: ErrorReply, 503: ErrorReply };
  app.get('/recommend', { schema: { querystring: RecommendQuery, response: { 200: Recommendation, ...errors } } }, async (req, reply) =>
    withModel(reply, async (m) => {
      const q = req.query;
      // Serialized by the response schema once, then cached as text with the list.
      const r = await recommendJson(m, q.user, q.k, q.exclude_seen, q.retrieval ?? o.retrieval);
      o.metrics.recommendations.inc({ retrieval: r.retrieval });
      if (r.coldStart) o.metrics.coldStarts.inc();
      return reply.type('application/json; charset=utf-8').send(r.json as never);
    }),
  );

  app.post('/recommend', { schema: { body: RecommendBody, response: { 200: RecommendBatch, ...errors } } }, async (req, reply) =>
    withModel(reply, async (m) => {
      const b = req.body;
      const results = await Promise.all(b.users.map((u) => recommend(m, u, b.k, b.exclude_seen, b.retrieval ?? o.retrieval)));
      for (const r of results) {
        o.metrics.recommendations.inc({ retrieval: r.retrieval });
        if (r.cold_start) o.metrics.coldStarts.inc();
      }
      return { model_version: m.version, results };
    }),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { 200: Ready, 503: Ready } } }, async (_req, reply) => {
    const m = o.holder.model;
    if (!m) return reply.code(503).send({ status: 'loading' });
    return {
      status: 'ready',
      model: { name: m.name, version: m.version, items: m.nItems, users: m.nUsers, dim: m.dim, provider: m.exact.provider, ef: m.ef, dataset: m.manifest.dataset.name },
    };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', o.metrics.registry.contentType);
    return o.metrics.registry.metrics();
  });

  if (o.token) {
    const token = o.token;
    const auth = async (req: FastifyRequest, reply: FastifyReply) => {
      if (!bearerMatches(req.headers.authorization, token)) {
        reply.header('www-authenticate', 'Bearer');
        return reply.code(401).send({ error: 'Unauthorized', message: 'a valid "Authorization: Bearer <PROMPTMM_TOKEN>" header is required' });
      }
    };
    app.post('/admin/reload', { onRequest: auth }, async () => o.reloader.reload(true));
    const online = o.online;
    if (online) {
      app.post('/interactions', { onRequest: auth, schema: { body: InteractionsBody, response: { 200: InteractionsReply, ...errors } } }, async (req) => online.ingest(req.body.interactions));
      app.post('/admin/finetune', { onRequest: auth }, async () => {
        await online.round();
        return { status: 'done' };
      });
    }
  }
  return app;
}

