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
import { SearchThreads } from './retrieval/search-threads.js';
import type { RetrievalName } from './common/schemas.js';
import type { RequestLimits } from './routes/recommend.js';
import type { ServingModel } from './serving/serving-model.js';
import { Reloader } from './serving/reloader.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { RedisStreamLog } from '../repository/redis-stream-log.js';
import type { FollowerOptions } from './online/stream-follower.js';
import { OnlineLearner, ONLINE_DEFAULTS, type OnlineConfig } from './online/online-learner.js';
import { SNAPSHOT_FOLDER } from './online/snapshot.js';
import { join } from 'node:path';
import client from 'prom-client';
import { DEFAULTS, SETTINGS, defaultsFor, type SettingKey } from '../core/defaults.js';

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
  /** Threads of an exact-path ONNX run (default in core/defaults.ts; 0 = ONNX Runtime's own choice). */
  onnxThreads?: number;
  /** Worker threads of the ANN searches (default in core/defaults.ts; 0 = on the event loop). */
  searchThreads?: number;
  /** Seconds between repository polls (besides the folder watch); 0 = watch only. */
  pollSeconds: number;
  token?: string;
  /** users whose recommendation lists are cached per version (LRU; 0 = off; default in core/defaults.ts) */
  cacheUsers?: number;
  /** Interaction log folder (default <repo>/<name>/interactions). */
  logDir?: string;
  /** Damage before acknowledged log records: 'fail' (refuse to start) or 'skip' (quarantine them); default 'fail'. */
  logOnCorrupt?: 'fail' | 'skip';
  /** Group-commit window of the interaction log in ms (default in core/defaults.ts: 0, one event-loop turn). */
  commitWindowMs?: number;
  /**
   * The interaction log on a Redis stream shared by replicas (redis://HOST:PORT/DB?stream=NAME)
   * instead of the local segments: every replica applies every entry; rounds and snapshots are
   * then off here (promptmm finetune runs rounds under a lease and publishes versions).
   */
  sharedLog?: string;
  /** Accept a Redis server that does not fsync every write (logged loudly). */
  allowVolatileLog?: boolean;
  /** How the shared stream is followed (defaults in core/defaults.ts). */
  follow?: Partial<Pick<FollowerOptions, 'blockMs' | 'applyWaitMs'>>;
  online?: Partial<OnlineConfig>;
  /** Cost limits of POST /recommend (REQUEST_LIMITS in server/routes/recommend.ts). */
  requestLimits?: Partial<RequestLimits>;
  /** Timeouts, connection cap, drain timeout (default CONNECTION_DEFAULTS). */
  connections?: Partial<ConnectionSettings>;
}

/** Where each connection setting is declared, with its flag, env var and range (core/defaults.ts). */
export const CONNECTION_FIELDS = {
  headersTimeoutMs: 'headersTimeoutMs',
  requestTimeoutMs: 'requestTimeoutMs',
  keepAliveTimeoutMs: 'keepAliveTimeoutMs',
  socketTimeoutMs: 'socketTimeoutMs',
  maxConnections: 'maxConnections',
  drainTimeoutMs: 'drainTimeoutMs',
} as const satisfies Record<keyof ConnectionSettings, SettingKey>;

export const CONNECTION_DEFAULTS: ConnectionSettings = defaultsFor(CONNECTION_FIELDS);

/** A connection setting's name in errors: the key and its flag. */
const settingName = (key: keyof ConnectionSettings) => `${key} (${SETTINGS[key].label})`;

/** The fields that are set: a setting given as undefined (an unset flag, a library caller's gap) keeps its default. */
function given<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Time left after the drain for closing the reloader, the learner (a round in flight) and the log. */
const CLOSE_AFTER_DRAIN_MS = 5_000;

export async function createServer(cfg: ServeConfig, log: Logger) {
  // A blank token would turn the write endpoints on behind a header no client can send usefully.
  if (cfg.token !== undefined && cfg.token.trim() === '') throw new Error('PROMPTMM_TOKEN is set but blank (only white space): set a real token, or unset it to turn the admin and write endpoints off');
  const settings = checkConnectionSettings({ ...CONNECTION_DEFAULTS, ...given(cfg.connections) }, settingName);
  if (!existsSync(modelDir(cfg.repo, cfg.name))) {
    throw new RepositoryError(`model ${cfg.name} not found in ${cfg.repo} (export one: promptmm export --name ${cfg.name})`);
  }
  const metrics = createMetrics();
  const holder = new ModelHolder(log);
  new client.Gauge({ name: 'promptmm_result_cache_hits', help: 'Result-cache hits of the served version', registers: [metrics.registry], collect() { this.set(holder.model?.cache.hits ?? 0); } });
  new client.Gauge({ name: 'promptmm_result_cache_misses', help: 'Result-cache misses of the served version', registers: [metrics.registry], collect() { this.set(holder.model?.cache.misses ?? 0); } });
  // Without a token there are no write endpoints: a read-only replica needs no durability check.
  const shared = cfg.sharedLog ? await RedisStreamLog.open(cfg.sharedLog, { log, allowVolatile: cfg.allowVolatileLog, readOnly: !cfg.token }) : null;
  const local = shared ? null : InteractionLog.open(cfg.logDir ?? join(modelDir(cfg.repo, cfg.name), 'interactions'), { log, onCorrupt: cfg.logOnCorrupt ?? DEFAULTS.logOnCorrupt, commitWindowMs: cfg.commitWindowMs ?? DEFAULTS.commitWindowMs });
  const ilog = shared ?? local!;
  // What a start that fails part-way has opened is closed again before the error goes up: the log's
  // file, a Redis connection and its follower loop, search threads, a folder watch would otherwise
  // outlive the failed start (and keep a CLI process from exiting).
  const opened: { online?: OnlineLearner; searchThreads?: SearchThreads | null; reloader?: Reloader } = {};
  /** The rest of the start, after the log is open: the learner, threads, reloader, app, the first version. */
  const assemble = async () => {
    const registers = [metrics.registry];
    if (local) {
      new client.Gauge({ name: 'promptmm_interaction_log_skipped_records', help: 'Damaged interaction-log records skipped (quarantined) at open', registers, collect() { this.set(local.skippedRecords); } });
      new client.Gauge({ name: 'promptmm_interaction_log_bytes', help: 'Bytes in the interaction log segments', registers, collect() { this.set(local.bytes()); } });
    }
    const onlineCfg = { ...ONLINE_DEFAULTS, snapshotDir: join(modelDir(cfg.repo, cfg.name), SNAPSHOT_FOLDER), providers: cfg.providers, ...given(cfg.online) };
    // A replica's rounds would move item vectors differently from the others': the finetune worker runs them.
    if (shared) Object.assign(onlineCfg, { snapshotDir: undefined, roundEvery: 0, roundSeconds: 0, snapshotEvery: 0, snapshotSeconds: 0 });
    const online = new OnlineLearner(holder, ilog, onlineCfg, metrics, log);
    opened.online = online;
    if (shared) {
      const f = online.follow({ blockMs: cfg.follow?.blockMs ?? DEFAULTS.followBlockMs, applyWaitMs: cfg.follow?.applyWaitMs ?? DEFAULTS.applyWaitMs, slice: onlineCfg.replaySlice });
      new client.Gauge({ name: 'promptmm_log_consumer_lag', help: 'Shared-log entries this replica has not applied yet (stream head − applied position)', registers, collect() { this.set(f.lag); } });
      new client.Gauge({ name: 'promptmm_log_stream_length', help: 'Entries in the shared stream (after trims), as last read', registers, collect() { this.set(f.length); } });
      new client.Gauge({ name: 'promptmm_log_reconnects', help: 'Times the connection to the shared log was re-established', registers, collect() { this.set(shared.reconnects); } });
      new client.Gauge({ name: 'promptmm_log_degraded', help: '1 while the shared log cannot be read (answers from the last state, writes refused)', registers, collect() { this.set(f.degraded || !shared.connected ? 1 : 0); } });
      new client.Gauge({ name: 'promptmm_log_read_errors', help: 'Failed reads of the shared log', registers, collect() { this.set(f.readErrors); } });
    }
    // Before a version goes live: its online-state snapshot and the log records after it (or after
    // what the bundle absorbed), replayed in slices while the old version serves; the records
    // acknowledged meanwhile are applied in the last step, synchronously with the swap, so no
    // acknowledged interaction can fall between the replay and the swap.
    const prepare = async (m: ServingModel, signal: AbortSignal) => {
      const last = await online.prepare(m, signal);
      // Every version in the repository could be served again (rollback): archive only what all absorbed.
      const absorbed = Math.min(...listVersions(cfg.repo, cfg.name).map((v) => {
        try {
          return readManifest(versionDir(cfg.repo, cfg.name, v)).logPosition ?? 0;
        } catch {
          return 0;
        }
      }));
      // Best effort: a version must not be refused (and the records captured for its swap kept
      // growing) because archiving failed; the next swap tries again.
      try {
        if (local) {
          const moved = local.compact(absorbed);
          if (moved) log.info({ segments: moved, absorbedUpTo: absorbed }, 'interaction log: absorbed segments moved to archive/');
        } else if (cfg.token && absorbed > 0) {
          const trimmed = await shared!.trim(absorbed);
          if (trimmed) log.info({ entries: trimmed, absorbedUpTo: absorbed }, 'shared interaction log: entries every version absorbed trimmed (XTRIM MINID)');
        }
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'interaction log: archiving absorbed segments failed; retried at the next swap');
      }
      return last;
    };
    // Unref'd: they never hold the process.
    const searchThreads = SearchThreads.start(cfg.searchThreads ?? DEFAULTS.searchThreads, log);
    opened.searchThreads = searchThreads;
    if (searchThreads) {
      new client.Gauge({ name: 'promptmm_search_threads', help: 'Search threads running (a failed one is not restarted: its searches run on the event loop)', registers, collect() { this.set(searchThreads.size); } });
      new client.Gauge({ name: 'promptmm_ann_searches_on_threads', help: 'ANN searches answered by the search threads (the others ran on the event loop)', registers, collect() { this.set(searchThreads.answered); } });
    }
    const load = { providers: cfg.providers, onnxThreads: cfg.onnxThreads, searchThreads, ef: cfg.ef, cacheUsers: cfg.cacheUsers ?? DEFAULTS.cacheUsers, log, onExactBatch: (n: number) => metrics.exactBatchSize.observe(n) };
    const reloader = new Reloader(cfg.repo, cfg.name, holder, load, metrics, log, prepare);
    opened.reloader = reloader;
    const connections = new Connections(settings, log);
    const app = buildApp({ holder, reloader, metrics, log, retrieval: cfg.retrieval, token: cfg.token, online, requestLimits: given(cfg.requestLimits), connections });
    const first = await reloader.reload();
    if (!first.changed) log.error({ model: cfg.name, refused: first.refused }, 'no valid model version yet: /readyz answers 503 until one is exported');
    return { app, reloader, online, connections, searchThreads };
  };
  let started: Awaited<ReturnType<typeof assemble>>;
  try {
    started = await assemble();
  } catch (err) {
    const quietly = (p: Promise<unknown> | undefined) => p?.catch((e: Error) => log.warn({ err: e.message }, 'closing after a failed start'));
    await quietly(opened.reloader?.stop());
    await quietly(opened.online ? opened.online.close() : ilog.close());
    await quietly(holder.close());
    await quietly(opened.searchThreads?.close());
    throw err;
  }
  const { app, reloader, online, connections, searchThreads } = started;
  if (!cfg.token) log.info('PROMPTMM_TOKEN is not set: admin and write endpoints are off');
  reloader.start(cfg.pollSeconds);

  let closing: Promise<DrainResult> | null = null;
  /** Drains the connections (answers what was received), then closes the app, reloader, learner (flushing the log) and model. */
  const close = (): Promise<DrainResult> => {
    closing ??= (async () => {
      // Stopped first, awaited last: a replay in progress is aborted now (an /admin/reload waiting
      // on it is answered, no version is swapped in mid-drain); the served one keeps answering.
      const stopped = reloader.stop();
      const drained = await connections.drain();
      await app.close();
      await stopped;
      await online.close();
      await holder.close();
      await searchThreads?.close();
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
  const s = await createServer(cfg, log);
  let address: string;
  try {
    address = await s.app.listen({ host: cfg.host, port: cfg.port });
  } catch (err) {
    await s.close(); // the reloader's folder watch would keep the process alive after the error
    throw err;
  }
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
