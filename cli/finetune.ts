/**
 * `promptmm finetune`: the fine-tuning worker of replicas on a shared stream. Replicas only apply
 * the immediate update of each entry (deterministic, so they agree); rounds, which move item
 * vectors, run here, in one process at a time (a lease in Redis with expiry), and each round's
 * result is published as a new bundle version (user and item vectors, seen items, and the
 * stream position it absorbed) that every replica hot-reloads through the usual path.
 */
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { exportBundle, type BundleInput } from '../export/exporter.js';
import { RedisLease } from '../repository/redis-lease.js';
import type { ServingModel } from '../server/serving/serving-model.js';
import { addSettings, log, settingValues } from './options.js';

const KEYS = ['serveName', 'repo', 'sharedLog', 'providers', 'roundEvery', 'roundSeconds', 'roundLr', 'roundEpochs', 'roundReplay', 'leaseSeconds'] as const;

export interface FinetuneOptions {
  name: string;
  repo: string;
  /** redis://HOST:PORT/DB?stream=NAME: the replicas' stream */
  log: string;
  providers: string[];
  /** publish after this many new entries … */
  roundEvery: number;
  /** … or this many seconds after the first unpublished one (0 = off) */
  roundSeconds: number;
  roundLr?: number;
  roundEpochs?: number;
  roundReplay?: number;
  leaseSeconds: number;
  /** one published round, then exit (tests, cron) */
  once?: boolean;
  signal?: AbortSignal;
}

export function register(program: Command): void {
  const cmd = program
    .command('finetune')
    .description('Fine-tuning worker for replicas sharing a Redis stream: holds a lease (one worker at a time), follows the stream, runs rounds and publishes each as a new bundle version the replicas hot-reload')
    .option('--once', 'publish one round, then exit');
  addSettings(cmd, KEYS).action(async (o) => {
    const v = settingValues(o, KEYS);
    if (!v.sharedLog) throw new Error('finetune needs the replicas\' stream: --log redis://HOST:PORT/DB?stream=NAME (or PROMPTMM_LOG)');
    const stop = new AbortController();
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());
    await runFinetuneWorker({ name: v.serveName!, repo: v.repo, log: v.sharedLog, providers: v.providers, roundEvery: v.roundEvery, roundSeconds: v.roundSeconds, roundLr: v.roundLr, roundEpochs: v.roundEpochs, roundReplay: v.roundReplay, leaseSeconds: v.leaseSeconds, once: o.once === true, signal: stop.signal }, log);
  });
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
  });

/** Waits for the lease, then follows the stream and publishes rounds while it holds it; resolves when stopped, after --once, or when the lease is lost. */
export async function runFinetuneWorker(o: FinetuneOptions, logger: Logger): Promise<{ published: number[] }> {
  const published: number[] = [];
  const ttlMs = o.leaseSeconds * 1000;
  const lease = await RedisLease.open(o.log, ttlMs);
  try {
    let waiting = false;
    while (!(await lease.tryAcquire())) {
      if (!waiting) logger.info({ lease: lease.key, holder: await lease.holder() }, 'another finetune worker holds the round lease: waiting for it to expire or be released');
      waiting = true;
      await sleep(ttlMs / 3, o.signal);
      if (o.signal?.aborted) return { published };
    }
    logger.info({ lease: lease.key, owner: lease.owner, ttlSeconds: o.leaseSeconds }, 'round lease taken');
    let lost = false;
    const renew = setInterval(() => {
      lease.renew().then(
        (ok) => (lost ||= !ok),
        () => {},
      );
    }, ttlMs / 3);
    // The serving stack without HTTP: the reloader and the follower keep it on the newest version and the stream's head.
    const { createServer } = await import('../server/server.js');
    const s = await createServer({ name: o.name, repo: o.repo, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: o.providers, pollSeconds: 5, sharedLog: o.log, online: { roundLr: o.roundLr, roundEpochs: o.roundEpochs, replay: o.roundReplay, reindexBudgetMs: 0, rebuildDuty: 1 } }, logger);
    try {
      let firstPending = 0;
      while (!o.signal?.aborted) {
        const m = s.holder.model;
        if (!m) {
          await sleep(100, o.signal);
          continue;
        }
        if (m.sequences) throw new Error(`model ${o.name} version ${m.version} is sequential (SASRec): it learns nothing in rounds, there is nothing to fine-tune`);
        const pending = m.appliedPosition - m.manifest.logPosition;
        if (pending > 0 && !firstPending) firstPending = Date.now();
        const due = pending >= o.roundEvery || (o.roundSeconds > 0 && pending > 0 && Date.now() - firstPending >= o.roundSeconds * 1000);
        if (!due) {
          await sleep(100, o.signal);
          continue;
        }
        s.online.queueAllOnline(m);
        await s.online.round();
        // An added item still being placed would be published with a zero vector.
        await s.online.placementsSettled();
        // Never publish on a lease that may have passed to another worker meanwhile.
        if (lost || !(await lease.renew().catch(() => false))) {
          logger.error({ lease: lease.key }, 'round lease lost (expired: this worker stalled?): not publishing, stopping');
          break;
        }
        const input = bundleFromServedState(m);
        const r = exportBundle(input, { repo: o.repo, hnsw: m.manifest.hnsw, log: logger });
        published.push(r.version);
        firstPending = 0;
        logger.info({ version: r.version, from: m.version, logPosition: input.logPosition, users: input.nUsers, seconds: +r.seconds.toFixed(2) }, 'fine-tuned version published');
        if (o.once) break;
        // The reloader swaps the published version in (watch or poll); wait for it so `pending` restarts from its position.
        for (let i = 0; i < 600 && s.holder.model === m && !o.signal?.aborted; i++) await sleep(50, o.signal);
      }
    } finally {
      clearInterval(renew);
      await s.close();
    }
  } finally {
    await lease.release();
    await lease.close();
  }
  return { published };
}

/**
 * The served state of a version as the next bundle: its user rows (bundle users, then the users
 * learned online, freed rows dropped), item vectors after the round, seen items (the bundle's
 * and those added online) and popularity counting them, at the position it has applied.
 */
export function bundleFromServedState(m: ServingModel): BundleInput {
  const d = m.dim;
  const byRow = [...m.userIndex.entries()].sort((a, b) => a[1] - b[1]);
  const nUsers = byRow.length;
  const userEmbeddings = new Float32Array(nUsers * d);
  const indptr = new Int32Array(nUsers + 1);
  const indices: number[] = [];
  // Items added online (PUT /items) are rows past the bundle's, with no train interactions yet.
  const popularity = new Int32Array(m.nItems);
  popularity.set(m.popularity);
  byRow.forEach(([, row], r) => {
    userEmbeddings.set(m.userVectors.subarray(row * d, (row + 1) * d), r * d);
    const extra = m.extraSeen.get(row);
    const seen = extra ? [...m.seenOf(row), ...extra].sort((a, b) => a - b) : [...m.seenOf(row)];
    for (const i of extra ?? []) popularity[i]++;
    indices.push(...seen);
    indptr[r + 1] = indices.length;
  });
  return {
    name: m.name,
    dataset: m.manifest.dataset,
    nUsers,
    nItems: m.nItems,
    dim: d,
    userEmbeddings,
    itemEmbeddings: m.itemTable().slice(),
    ids: { users: byRow.map(([id]) => id), items: m.itemIds.slice() },
    seen: { indptr, indices: Int32Array.from(indices) },
    popularity,
    training: { ...m.manifest.training, finetunedFrom: { version: m.version, logPosition: m.manifest.logPosition } },
    // The metrics are the base version's, measured before the rounds (a round has no held-out split).
    metrics: { ...m.manifest.metrics, measuredOnVersion: m.version },
    logPosition: m.appliedPosition,
    itemLabels: m.catalog.labels,
    ...(m.itemEncoderBytes && m.manifest.itemEncoder ? { itemEncoderCopy: { onnx: m.itemEncoderBytes, section: m.manifest.itemEncoder } } : {}),
    // Its position is past the deletes, dislikes and puts it applied: the version must keep them itself.
    catalogState: {
      hidden: [...m.catalog.deleted].map((r) => m.itemIds[r]),
      dislikes: [...m.catalog.dislikeEntries()].map(([u, rows]) => [u, [...rows].map((r) => m.itemIds[r])]),
    },
  };
}
