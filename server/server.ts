/**
 * Composes the serving process: metrics, the model holder and reloader, the interaction log
 * (replayed into each new version) and the online learner, the HTTP app; the drain on shutdown.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { listVersions, modelDir, readManifest, RepositoryError, versionDir } from '../repository/versions.js';
import { buildApp } from './app.js';
import { checkConnectionSettings, Connections, type ConnectionSettings, type DrainResult } from './connections.js';
import { createMetrics } from './common/metrics.js';
import { ModelHolder } from './serving/model-holder.js';
import type { RetrievalName } from './common/schemas.js';
import type { ServingModel } from './serving/serving-model.js';
import { Reloader } from './serving/reloader.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { OnlineLearner, ONLINE_DEFAULTS, type OnlineConfig } from './online/online-learner.js';
import { join } from 'node:path';
import client from 'prom-client';

export interface ServeConfig {
  name: string;
  repo: string;
  host: string;
  port: number;
  retrieval: RetrievalName;
  /** HNSW query ef; default: the manifest's recommended value. */
  ef?: number;
  /** ONNX Runtime execution providers, tried in order. */
  providers: string[];
  /** Seconds between repository polls (besides the folder watch); 0 = watch only. */
  pollSeconds: number;
  token?: string;
  /** users whose recommendation lists are cached per version (LRU; 0 = off) */
  cacheUsers?: number;
  /** Interaction log folder (default <repo>/<name>/interactions). */
  logDir?: string;
  online?: Partial<OnlineConfig>;
  /** Timeouts, connection cap, drain timeout (default CONNECTION_DEFAULTS). */
  connections?: Partial<ConnectionSettings>;
}

/** The HTTP connection settings' defaults (the fields are described on ConnectionSettings). */
export const CONNECTION_DEFAULTS: ConnectionSettings = {
  // Enough for headers over a slow link; a client that trickles them is cut off (408).
  headersTimeoutMs: 10_000,
  // The whole request, body included: a 1 MiB body (the body limit) at ≥ 70 kB/s.
  requestTimeoutMs: 15_000,
  // Above the usual load balancer idle timeout (60 s on AWS ALB and nginx), so the balancer
  // closes an idle connection first and never sends a request onto one the server is closing.
  keepAliveTimeoutMs: 65_000,
  // Far above the slowest legal request's compute time, and above the request timeout so a slow
  // request gets its 408 first; closes the connection of a client that stops reading its answer
  // (the timer restarts whenever the kernel takes more of the answer: measured up to ~2× this).
  socketTimeoutMs: 20_000,
  // Each costs a file descriptor and a few KiB; a flood beyond it is closed on accept.
  maxConnections: 10_000,
  // The drain plus closing the log and learner (at most CLOSE_AFTER_DRAIN_MS more) stay under
  // Kubernetes' default terminationGracePeriodSeconds of 30 s.
  drainTimeoutMs: 20_000,
};

/** The environment variable of each connection setting (until the CLI has flags for them). */
export const CONNECTION_ENV: Record<keyof ConnectionSettings, string> = {
  headersTimeoutMs: 'PROMPTMM_HEADERS_TIMEOUT_MS',
  requestTimeoutMs: 'PROMPTMM_REQUEST_TIMEOUT_MS',
  keepAliveTimeoutMs: 'PROMPTMM_KEEP_ALIVE_TIMEOUT_MS',
  socketTimeoutMs: 'PROMPTMM_SOCKET_TIMEOUT_MS',
  maxConnections: 'PROMPTMM_MAX_CONNECTIONS',
  drainTimeoutMs: 'PROMPTMM_DRAIN_TIMEOUT_MS',
};

/** The connection settings set in env (the others are left out); their ranges are checked by createServer. */
export function connectionSettingsFromEnv(env: NodeJS.ProcessEnv): Partial<ConnectionSettings> {
  const out: Partial<ConnectionSettings> = {};
  for (const [key, name] of Object.entries(CONNECTION_ENV) as [keyof ConnectionSettings, string][]) {
    const v = env[name]?.trim();
    if (!v) continue;
    if (!/^\d+$/.test(v)) throw new RangeError(`${key} (${name}) must be a whole number${key === 'maxConnections' ? '' : ' of milliseconds'}, got "${v}"`);
    out[key] = Number(v);
  }
  return out;
}

/** Time left after the drain for closing the reloader, the learner (a round in flight) and the log. */
const CLOSE_AFTER_DRAIN_MS = 5_000;

export async function createServer(cfg: ServeConfig, log: Logger) {
  // A setting given as undefined (an unset flag) keeps its default.
  const given = Object.fromEntries(Object.entries(cfg.connections ?? {}).filter(([, v]) => v !== undefined));
  const settings = checkConnectionSettings({ ...CONNECTION_DEFAULTS, ...given }, (key) => `${key} (${CONNECTION_ENV[key]})`);
  if (!existsSync(modelDir(cfg.repo, cfg.name))) {
    throw new RepositoryError(`model ${cfg.name} not found in ${cfg.repo} (export one: promptmm export --name ${cfg.name})`);
  }
  const metrics = createMetrics();
  const holder = new ModelHolder(log);
  new client.Gauge({ name: 'promptmm_result_cache_hits', help: 'Result-cache hits of the served version', registers: [metrics.registry], collect() { this.set(holder.model?.cache.hits ?? 0); } });
  new client.Gauge({ name: 'promptmm_result_cache_misses', help: 'Result-cache misses of the served version', registers: [metrics.registry], collect() { this.set(holder.model?.cache.misses ?? 0); } });
  const load = { providers: cfg.providers, ef: cfg.ef, cacheUsers: cfg.cacheUsers ?? 0, log, onExactBatch: (n: number) => metrics.exactBatchSize.observe(n) };
  const ilog = InteractionLog.open(cfg.logDir ?? join(modelDir(cfg.repo, cfg.name), 'interactions'), { log });
  new client.Gauge({ name: 'promptmm_interaction_log_bytes', help: 'Bytes in the interaction log segments', registers: [metrics.registry], collect() { this.set(ilog.bytes()); } });
  const online = new OnlineLearner(holder, ilog, { ...ONLINE_DEFAULTS, providers: cfg.providers, ...cfg.online }, metrics, log);
  // Before a version goes live: replay the log records it has not absorbed (synchronously, so
  // no acknowledged interaction can fall between the replay and the swap).
  const prepare = (m: ServingModel) => {
    const entries = ilog.read(m.appliedPosition);
    if (entries.length) {
      online.apply(m, entries, entries[entries.length - 1].position);
      log.info({ version: m.version, replayed: entries.length, from: entries[0].position, to: entries[entries.length - 1].position }, 'interaction log replayed into the new version');
    }
    online.onSwap();
    // Every version in the repository could be served again (rollback): archive only what all absorbed.
    const absorbed = Math.min(...listVersions(cfg.repo, cfg.name).map((v) => {
      try {
        return readManifest(versionDir(cfg.repo, cfg.name, v)).logPosition ?? 0;
      } catch {
        return 0;
      }
    }));
    const moved = ilog.compact(absorbed);
    if (moved) log.info({ segments: moved, absorbedUpTo: absorbed }, 'interaction log: absorbed segments moved to archive/');
  };
  const reloader = new Reloader(cfg.repo, cfg.name, holder, load, metrics, log, prepare);
  const connections = new Connections(settings, log);
  const app = buildApp({ holder, reloader, metrics, log, retrieval: cfg.retrieval, token: cfg.token, online, connections });
  const first = await reloader.reload();
  if (!first.changed) log.error({ model: cfg.name, refused: first.refused }, 'no valid model version yet: /readyz answers 503 until one is exported');
  if (!cfg.token) log.info('PROMPTMM_TOKEN is not set: admin and write endpoints are off');
  reloader.start(cfg.pollSeconds);

  let closing: Promise<DrainResult> | null = null;
  /** Drains the connections (answers what was received), then closes the app, reloader, learner (flushing the log) and model. */
  const close = (): Promise<DrainResult> => {
    closing ??= (async () => {
      const drained = await connections.drain();
      await app.close();
      await reloader.stop();
      await online.close();
      await holder.close();
      return drained;
    })();
    return closing;
  };
  return { app, holder, reloader, metrics, online, log: ilog, connections, close };
}

/**
 * Starts listening; on SIGTERM/SIGINT drains and exits 0, or 1 if the drain timed out or closing
 * failed. A second signal exits 1 at once.
 */
export async function serve(cfg: ServeConfig, log: Logger): Promise<void> {
  const s = await createServer({ ...cfg, connections: { ...connectionSettingsFromEnv(process.env), ...cfg.connections } }, log);
  const address = await s.app.listen({ host: cfg.host, port: cfg.port });
  log.info({ address, model: cfg.name, version: s.holder.model?.version ?? null, retrieval: cfg.retrieval }, `serving on ${address}`);
  const { drainTimeoutMs } = s.connections.settings;
  let signalled: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      log.error({ signal: sig }, `${sig} during the drain: exiting at once`);
      process.exit(1);
    }
    signalled = sig;
    log.info({ signal: sig, connections: s.connections.open, drainTimeoutMs }, 'shutting down: answering the requests already received, then closing');
    // A backstop in case closing the learner or the log hangs after the drain.
    setTimeout(() => {
      log.error({ ms: drainTimeoutMs + CLOSE_AFTER_DRAIN_MS }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, drainTimeoutMs + CLOSE_AFTER_DRAIN_MS).unref();
    // Every connection is closed when close() resolves, and node closes one only once its answer is
    // handed to the kernel, which still delivers it after the process exits: exiting at once loses nothing.
    s.close().then(
      (r) => {
        if (r.timedOut) {
          log.error({ cut: r.cut, drainTimeoutMs }, 'shut down after the drain timed out: answers were cut off');
          process.exit(1);
        }
        log.info({ ms: r.ms }, 'shut down cleanly');
        process.exit(0);
      },
      (err) => {
        log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
