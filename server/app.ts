/**
 * Builds the fastify app: the route plugins of server/routes (admin and write routes only with a
 * token, in a scope that checks it), strict input (http-input.ts), the error answers (a 400 naming
 * the field, 405 with Allow; no stack trace ever reaches a client), request latency to /metrics,
 * and the connection timeouts, cap and drain of server/connections.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { ServerMetrics } from './common/metrics.js';
import { fastifyConnectionOptions, type Connections } from './connections.js';
import { PATTERN_MESSAGES, type RetrievalName } from './common/schemas.js';
import { badRequest, parseJsonBody, RouteMethods, strictQueryHook, UnparsableBody } from './http-input.js';
import type { OnlineLearner } from './online/online-learner.js';
import { adminRoutes } from './routes/admin.js';
import { healthRoutes } from './routes/health.js';
import { interactionRoutes } from './routes/interactions.js';
import { metricsRoutes } from './routes/metrics.js';
import { recommendRoutes, requestLimits, type RequestLimits } from './routes/recommend.js';
import { sessionRoutes } from './routes/session.js';
import { itemRoutes, neighborRoutes } from './routes/items.js';
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
  /** Cost limits of POST /recommend (default REQUEST_LIMITS in routes/recommend.ts). */
  requestLimits?: Partial<RequestLimits>;
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
    // Item ids travel in paths (/items/{id}): long enough for a 256-character id percent-encoded
    // (4 UTF-8 bytes × 3), so that a longer one is a 400 naming `id`, not a 404.
    routerOptions: { maxParamLength: 16 * 1024 },
    // No type coercion: a JSON body's numbers are JSON numbers ("k": "10" is a 400, and "Infinity"
    // can never become one); query strings are converted by strictQueryHook before validation.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
}
type App = ReturnType<typeof createFastify>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's place among those received on its socket (0 = first); see dropRequestsBehindClose. */
    socketPlace: number;
  }
}

export function buildApp(o: AppOptions): App {
  const limits = requestLimits(o.requestLimits); // bad limits fail here, at start-up
  const app = createFastify(o.log, o.connections);
  // Root hooks and handlers, set before the plugins load, so every route plugin inherits them.
  o.connections.attach(app, o.metrics.registry);
  dropRequestsBehindClose(app);
  timeRequests(app, o.metrics);
  const methods = strictInput(app);
  answerErrors(app, methods);

  app.register(recommendRoutes, { holder: o.holder, metrics: o.metrics, retrieval: o.retrieval, limits });
  app.register(sessionRoutes, { holder: o.holder, metrics: o.metrics, retrieval: o.retrieval });
  app.register(neighborRoutes, { holder: o.holder, retrieval: o.retrieval });
  app.register(healthRoutes, { holder: o.holder, draining: () => o.connections.isDraining, pin: () => ({ pinned: o.reloader.pinned, problem: o.reloader.pinProblem }), follower: () => o.online?.follower ?? null });
  app.register(metricsRoutes, { metrics: o.metrics });
  const { token, online } = o;
  if (token) {
    app.register(async (scope) => {
      scope.addHook('onRequest', bearerAuth(token));
      await scope.register(adminRoutes, { reloader: o.reloader, online });
      if (online) await scope.register(interactionRoutes, { online });
      await scope.register(itemRoutes, { holder: o.holder, online });
    });
  }
  return app;
}

/**
 * Requests pipelined on a connection behind a response that closes it (a 413, a client's
 * "Connection: close", shutdown) are never answered: they are not run either, so no write
 * happens that its client cannot know of. Each request gets its place on the socket at
 * onRequest; a closing response records its place; preHandler drops the ones behind it. (One
 * whose handler started before the closing response was decided still runs: it cannot be recalled.)
 */
function dropRequestsBehindClose(app: App): void {
  // Per socket: the place the next request takes, and the place of the response that closes it.
  const sockets = new WeakMap<object, { next: number; last: number }>();
  const closes = (req: FastifyRequest) => {
    const c = req.headers.connection?.toLowerCase();
    return c === 'close' || (req.raw.httpVersion === '1.0' && c !== 'keep-alive');
  };
  // A decorated field (not a WeakMap per request): the request objects keep one shape.
  app.decorateRequest('socketPlace', 0);
  app.addHook('onRequest', (req, _reply, done) => {
    let st = sockets.get(req.raw.socket);
    if (!st) sockets.set(req.raw.socket, (st = { next: 0, last: Infinity }));
    req.socketPlace = st.next++;
    if (closes(req)) st.last = Math.min(st.last, req.socketPlace);
    done();
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    const st = sockets.get(req.raw.socket);
    if (st && String(reply.getHeader('connection')).toLowerCase() === 'close') st.last = Math.min(st.last, req.socketPlace);
    done(null, payload);
  });
  app.addHook('preHandler', (req, reply, done) => {
    const sock = req.raw.socket;
    if (req.socketPlace > (sockets.get(sock)?.last ?? Infinity) || sock.destroyed || sock.writableEnded) {
      req.log.debug({ url: req.url }, 'request behind a closing response on its connection: not run');
      reply.hijack(); // nothing is written: the socket ends after the closing response ahead of it
    }
    done();
  });
}

/**
 * Query strings and JSON bodies read strictly (http-input.ts): every route with a querystring
 * schema gets strictQueryHook; JSON bodies never fail in the parser (so the connection stays
 * open) and an unparsable one is a 400 before validation; text/plain, fastify's other default
 * parser, is dropped (a 415, where the schema would say "body must be object"). Returns the
 * methods of each URL, for 405s.
 */
function strictInput(app: App): RouteMethods {
  const methods = new RouteMethods();
  app.addHook('onRoute', (route) => {
    methods.add(route.url, route.method);
    const query = route.schema?.querystring;
    if (query) {
      const hook = strictQueryHook(query);
      const own = route.preValidation;
      route.preValidation = own ? [hook, ...(Array.isArray(own) ? own : [own])] : [hook];
    }
  });
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, parseJsonBody(body as string)));
  app.addHook('preValidation', (req, reply, done) => {
    if (req.body instanceof UnparsableBody) reply.code(400).send(badRequest('body', req.body.field, req.body.detail));
    else done();
  });
  return methods;
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

/** The 400's words for a validation error: ajv's message, the allowed values of an enum, ours for a pattern. */
function detailOf(v: NonNullable<FastifyError['validation']>[number]): string {
  const params = v.params as { allowedValues?: unknown[]; pattern?: string } | undefined;
  if (v.keyword === 'pattern' && params?.pattern && PATTERN_MESSAGES[params.pattern]) return PATTERN_MESSAGES[params.pattern];
  if (v.keyword === 'additionalProperties') return 'is not a known field';
  const allowed = params?.allowedValues;
  return `${v.message ?? 'invalid'}${allowed ? ` (${allowed.join(', ')})` : ''}`;
}

/** Validation errors → 400 naming the field; 4xx and 503 keep their message; anything else is a logged 500. */
function answerErrors(app: App, methods: RouteMethods): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) return reply.code(400).send(badRequest(err.validationContext ?? 'request', fieldOf(err), detailOf(err.validation[0])));
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ error: 'Unsupported Media Type', message: `content-type ${JSON.stringify(req.headers['content-type'] ?? '')} is not accepted: send application/json` });
    }
    const status = err.statusCode && ((err.statusCode >= 400 && err.statusCode < 500) || err.statusCode === 503) ? err.statusCode : 500;
    if (status === 500) {
      req.log.error({ err, url: req.url }, 'request failed');
      return reply.code(500).send({ error: 'Internal Server Error', message: 'internal error (logged on the server)' });
    }
    return reply.code(status).send({ error: STATUS_CODES[status] ?? 'Error', message: err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    const allow = methods.allow(path);
    if (allow) return reply.code(405).header('allow', allow).send({ error: 'Method Not Allowed', message: `${path} answers ${allow}, not ${req.method}` });
    return reply.code(404).send({ error: 'Not Found', message: `no route ${req.method} ${path}` });
  });
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of "Authorization: Bearer <token>" against the token's digest (digests, so lengths never leak); the scheme in any case (RFC 7235). */
function bearerMatches(header: string | undefined, tokenDigest: Buffer): boolean {
  const m = /^bearer +(.+)$/i.exec(header ?? '');
  return timingSafeEqual(digest(m ? m[1] : ''), tokenDigest) && m !== null;
}

/** An onRequest hook that answers 401 unless the request carries the token (its digest taken once). */
function bearerAuth(token: string) {
  const tokenDigest = digest(token);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (!bearerMatches(req.headers.authorization, tokenDigest)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ error: 'Unauthorized', message: 'a valid "Authorization: Bearer <PROMPTMM_TOKEN>" header is required' });
    }
  };
}
