/**
 * GET /recommend (one user, through the version's result cache) and POST /recommend (a batch of
 * users, its cost bounded and computed in slices that let other requests through).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { ServerMetrics } from '../common/metrics.js';
import { defaultsFor } from '../../core/defaults.js';
import { ErrorReplies, ID_PATTERN, MAX_BATCH_USERS, MAX_EXCLUDE, MAX_FILTER_LABELS, MAX_K, RecommendBatch, RecommendBody, RecommendQuery, Recommendation, type RetrievalName } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';
import { recommend, recommendJson, type RequestFilters } from '../serving/recommender.js';
import { labelProblem } from '../../repository/bundle-format.js';
import type { ServingModel } from '../serving/serving-model.js';

/**
 * The cost limits of POST /recommend, counted in list entries (users × k): the work of a batch
 * (searches, ranking, objects, JSON) grows with it. Defaults and meaning in core/defaults.ts
 * (256 × 1000 entries was 11 MB of JSON and blocked the loop for seconds; a slice of 1024 is
 * about 1.5 ms of ANN work on a Tiktok-sized bundle at any k). Overridden through AppOptions.requestLimits.
 */
export const REQUEST_LIMIT_FIELDS = { maxBatchEntries: 'maxBatchEntries', sliceEntries: 'batchSliceEntries', maxEntriesInFlight: 'maxBatchEntriesInFlight' } as const;
export const REQUEST_LIMITS = defaultsFor(REQUEST_LIMIT_FIELDS);
export type RequestLimits = typeof REQUEST_LIMITS;

/**
 * A user's fixed work (lookup, vector copy, search set-up, result object) in list entries'
 * worth: per user 0.125 ms + 1.7 µs per entry on the ANN path, so about 75; rounded up.
 */
const USER_COST = 100;

/** The limits with `over` applied, each a positive integer, in-flight at least one batch's worth; else an error naming it. */
export function requestLimits(over: Partial<RequestLimits> = {}): RequestLimits {
  const l = { ...REQUEST_LIMITS, ...over };
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`request limit ${name} must be a positive integer, got ${v}`);
  }
  if (l.maxEntriesInFlight < l.maxBatchEntries) throw new Error(`request limit maxEntriesInFlight (${l.maxEntriesInFlight}) must be at least maxBatchEntries (${l.maxBatchEntries})`);
  return l;
}

export interface RecommendRoutesOptions {
  holder: ModelHolder;
  metrics: ServerMetrics;
  /** The path of requests that name none. */
  retrieval: RetrievalName;
  /** Checked limits (requestLimits()); default REQUEST_LIMITS. */
  limits?: RequestLimits;
}

export const recommendRoutes: FastifyPluginAsyncTypebox<RecommendRoutesOptions> = async (app, o) => {
  const limits = o.limits ?? REQUEST_LIMITS;
  let entriesInFlight = 0;

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

  // One counter child per path, looked up once: labelling each increment hashes the label set every time.
  const byPath = new Map<RetrievalName, { inc: () => void }>();
  const served = (retrieval: RetrievalName, coldStart: boolean) => {
    let c = byPath.get(retrieval);
    if (!c) byPath.set(retrieval, (c = o.metrics.recommendations.labels({ retrieval })));
    c.inc();
    if (coldStart) o.metrics.coldStarts.inc();
  };

  app.get('/recommend', { schema: { querystring: RecommendQuery, response: { 200: Recommendation, ...ErrorReplies } } }, async (req, reply) =>
    withModel(reply, async (m) => {
      const q = req.query;
      // Serialized by the response schema once, then cached as text with the list.
      const filters = queryFilters(q);
      if ('field' in filters) return reply.code(400).send(filters);
      const r = await recommendJson(m, q.user, q.k, q.exclude_seen, q.retrieval ?? o.retrieval, filters);
      served(r.retrieval, r.coldStart);
      return reply.type('application/json; charset=utf-8').send(r.json as never);
    }),
  );

  app.post('/recommend', { schema: { body: RecommendBody, response: { 200: RecommendBatch, ...ErrorReplies } } }, async (req, reply) => {
    const b = req.body;
    const cost = b.users.length * b.k;
    if (cost > limits.maxBatchEntries) {
      const most = Math.max(1, Math.floor(limits.maxBatchEntries / b.users.length));
      const detail = `users × k must be at most ${limits.maxBatchEntries}, got ${b.users.length} × ${b.k} = ${cost}: ask for k ≤ ${Math.min(most, MAX_K)} or split the batch`;
      return reply.code(400).send({ error: 'Bad Request', message: `body.k: ${detail}`, field: 'k' });
    }
    if (entriesInFlight > 0 && entriesInFlight + cost > limits.maxEntriesInFlight) {
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({ error: 'Service Unavailable', message: `busy: batches of ${entriesInFlight} list entries in progress (limit ${limits.maxEntriesInFlight}); retry shortly` });
    }
    const filters: RequestFilters = { exclude: b.exclude, labels: b.labels, excludeLabels: b.exclude_labels };
    entriesInFlight += cost;
    try {
      return await withModel(reply, async (m) => {
        // Slices of users; between two, other requests run (a batch is otherwise one long block
        // of searches). The version stays held across the turns.
        const per = Math.max(1, Math.floor(limits.sliceEntries / (b.k + USER_COST)));
        const results: Recommendation[] = [];
        for (let i = 0; i < b.users.length; i += per) {
          if (i > 0) await nextTurn();
          results.push(...(await Promise.all(b.users.slice(i, i + per).map((u) => recommend(m, u, b.k, b.exclude_seen, b.retrieval ?? o.retrieval, filters)))));
        }
        for (const r of results) served(r.retrieval, r.cold_start);
        return { model_version: m.version, results };
      });
    } finally {
      entriesInFlight -= cost;
    }
  });
};

const ID_RE = new RegExp(ID_PATTERN, 'u');

/**
 * GET /recommend's filters (issue 18): comma-separated item ids (`exclude`, at most
 * MAX_EXCLUDE, each an id of 1–256 characters) and labels (`labels`, `exclude_labels`, at most
 * MAX_FILTER_LABELS each); a 400 body naming the parameter otherwise.
 */
export function queryFilters(q: { exclude?: string; labels?: string; exclude_labels?: string }): RequestFilters | { error: string; message: string; field: string } {
  // the 400 body of http-input.ts' badRequest (not imported: routes sit below server/)
  const badRequest = (context: string, field: string, detail: string) => ({ error: 'Bad Request', message: `${context}.${field}: ${detail}`, field });
  const list = (raw: string | undefined) => (raw === undefined || raw === '' ? undefined : raw.split(','));
  const exclude = list(q.exclude);
  if (exclude) {
    if (exclude.length > MAX_EXCLUDE) return badRequest('querystring', 'exclude', `at most ${MAX_EXCLUDE} item ids, got ${exclude.length}`);
    const bad = exclude.findIndex((id) => id.length === 0 || id.length > 256 || !ID_RE.test(id));
    if (bad >= 0) return badRequest('querystring', 'exclude', `item id ${bad + 1} must be 1 to 256 characters without control characters`);
  }
  const out: RequestFilters = { exclude };
  for (const [field, key] of [['labels', 'labels'], ['exclude_labels', 'excludeLabels']] as const) {
    const ls = list(q[field]);
    if (!ls) continue;
    if (ls.length > MAX_FILTER_LABELS) return badRequest('querystring', field, `at most ${MAX_FILTER_LABELS} labels, got ${ls.length}`);
    for (let n = 0; n < ls.length; n++) {
      const why = labelProblem(ls[n]);
      if (why) return badRequest('querystring', field, `label ${n + 1} ${why}`);
    }
    out[key] = ls;
  }
  return out;
}
