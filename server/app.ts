/**
 * Builds the fastify app: the route plugins of server/routes (admin and write routes only with a
 * token, in a scope that checks it), the error answers (a 400 naming the field; no stack trace
 * ever reaches a client), request latency to /metrics, and the connection timeouts, cap and drain
 * of server/connections.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { ServerMetrics } from './common/metrics.js';
import { fastifyConnectionOptions, type Connections } from './connections.js';
import type { RetrievalName } from './common/schemas.js';
import type { OnlineLearner } from './online/online-learner.js';
import { adminRoutes } from './routes/admin.js';
import { healthRoutes } from './routes/health.js';
import { interactionRoutes } from './routes/interactions.js';
import { metricsRoutes } from './routes/metrics.js';
import { recommendRoutes } from './routes/recommend.js';
import type { ModelHolder } from './serving/model-holder.js';
import type { Reloader } from './serving/reloader.js';

export interface AppOptions {
  holder: ModelHolder;
  reloader: Reloader;
  metrics: ServerMetrics;
  log: Logger;
  retrieval: RetrievalName;
  /** Bearer token of admin and write endpoints; undefined turns them off. */
  token?: string;
  online?: OnlineLearner;
  /** Timeouts, the connection cap and the drain on close. */
  connections: Connections;
}

function createFastify(log: Logger, connections: Connections) {
  return Fastify({
    loggerInstance: log,
    ...fastifyConnectionOptions(connections.settings),
    // A log line per request would cost more than the request; latency goes to /metrics instead.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    bodyLimit: 1 << 20,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
}
type App = ReturnType<typeof createFastify>;

export function buildApp(o: AppOptions): App {
  const app = createFastify(o.log, o.connections);
  // Root hooks and handlers, set before the plugins load, so every route plugin inherits them.
  o.connections.attach(app, o.metrics.registry);
  timeRequests(app, o.metrics);
  answerErrors(app);

  app.register(recommendRoutes, { holder: o.holder, metrics: o.metrics, retrieval: o.retrieval });
  app.register(healthRoutes, { holder: o.holder });
  app.register(metricsRoutes, { metrics: o.metrics });
  const { token, online } = o;
  if (token) {
    app.register(async (scope) => {
      scope.addHook('onRequest', bearerAuth(token));
      await scope.register(adminRoutes, { reloader: o.reloader, online });
      if (online) await scope.register(interactionRoutes, { online });
    });
  }
  return app;
}

/**
 * Request latency by (method, route, status). One histogram child per label set, looked up
 * once: labelling each observation hashes the label set every time.
 */
function timeRequests(app: App, metrics: ServerMetrics): void {
  const durations = new Map<string, { observe: (v: number) => void }>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const key = `${req.method} ${route} ${reply.statusCode}`;
    let h = durations.get(key);
    if (!h) durations.set(key, (h = metrics.requestDuration.labels({ method: req.method, route, status_code: String(reply.statusCode) })));
    h.observe(reply.elapsedTime / 1000);
    done();
  });
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

/** Validation errors → 400 naming the field; 4xx and 503 keep their message; anything else is a logged 500. */
function answerErrors(app: App): void {
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
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of "Authorization: Bearer <token>" (digests, so lengths never leak). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  return timingSafeEqual(digest(m ? m[1] : ''), digest(token)) && m !== null;
}

/** An onRequest hook that answers 401 unless the request carries the token. */
function bearerAuth(token: string) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (!bearerMatches(req.headers.authorization, token)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ error: 'Unauthorized', message: 'a valid "Authorization: Bearer <PROMPTMM_TOKEN>" header is required' });
    }
  };
}
