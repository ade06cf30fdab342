/**
 * Learning while serving. POST /interactions → validated → appended to the durable log →
 * acknowledged → applied at once: the user's seen set gains the items and the user's vector
 * takes a graph step toward each item and a few BPR steps against sampled negatives (item
 * vectors fixed; steps.ts); a user without history starts from the vector of its first item.
 * Every N interactions or T seconds a background round (round.ts) of BPR on recent
 * interactions plus a replayed sample of old ones moves user and item vectors; the changed
 * items are updated in the HNSW index and the exact path's ONNX table is rebuilt and swapped.
 * The round yields to the event loop between small chunks, so requests are never blocked for
 * its duration.
 *
 * A version about to be swapped in is brought up to date off the request path (prepare): its
 * snapshot if it has one (snapshot.ts), then the log records after that, read on a worker and
 * applied in slices while the old version serves, then those acknowledged meanwhile; only the
 * last few are applied synchronously right before the swap. Users learned online are capped
 * (online-users.ts). Snapshots are written every N records or S seconds and on close.
 *
 * On a shared log (a Redis stream several replicas write to) nothing is applied at ingest: the
 * stream follower (stream-follower.ts) applies every entry, this replica's and the others', in
 * position order, and a write is answered once its entries are applied here (read-your-writes).
 * Negatives are seeded by the entry's position, so replicas that applied the same prefix of the
 * stream hold the same state. Rounds and snapshots are off there: one lease holder
 * (`promptmm finetune`) runs rounds and publishes them as bundle versions.
 *
 * A sequential version (SASRec) learns nothing online: an interaction joins the user's sequence
 * and seen set and drops the user's cached answers, so the next answer encodes the new
 * sequence; no vector steps, no rounds, no snapshots (a restart replays the log from the
 * bundle's position, which is only appends).
 */
import { mkdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import client from 'prom-client';
import { Rng } from '../../core/rng.js';
import { defaultsFor } from '../../core/defaults.js';
import { NewestQueue } from './newest-queue.js';
import { readLogSlices } from './log-reader.js';
import { itemsToReindex, refreshAnn, trainingPairs, trainPairs } from './round.js';
import { captureSnapshot, captureSnapshotSync, checkSnapshot, readSnapshot, removeOtherSnapshots, restoreSnapshot, serializeSnapshot, snapshotPath, writeSnapshotFile, type Snapshot, type SnapshotParts } from './snapshot.js';
import { bprStep, dislikeStep, graphStep, sampleNegative } from './steps.js';
import { VersionState } from './version-state.js';
import { InteractionLog, type LogEntry, type LoggedInteraction } from '../../repository/interaction-log.js';
import type { RedisStreamLog } from '../../repository/redis-stream-log.js';
import { StreamFollower, type FollowerOptions } from './stream-follower.js';
import { ItemPlacer, cannotPlace, fitsEncoder, needsVector } from './item-placer.js';
import type { ServerMetrics } from '../common/metrics.js';
import type { Interaction, InteractionsReply } from '../common/schemas.js';
import type { ModelHolder } from '../serving/model-holder.js';
import type { ServingModel } from '../serving/serving-model.js';

export interface OnlineConfig {
  /** BPR steps on the user's vector per new interaction */
  steps: number;
  /**
   * Graph step weight: LightGCN builds a user's vector from its items' vectors, so a new item
   * moves the user toward it by mix/√(n+1) (n = the user's history), at the user's norm.
   */
  mix: number;
  lr: number;
  reg: number;
  /** background round every this many interactions (0 = off) … */
  roundEvery: number;
  /** … or this many seconds after the first unabsorbed one (0 = off) */
  roundSeconds: number;
  /** epochs over the recent interactions in a round, and old samples replayed per recent one */
  roundEpochs: number;
  replay: number;
  roundLr: number;
  /**
   * When a round changed at least this share of the items, the ANN index is rebuilt on a worker
   * thread instead of re-linking the changed items in place on the event loop (see ann-rebuild.ts).
   */
  rebuildShare: number;
  /**
   * An item is re-indexed only if a round moved it by at least this share of its norm: most of
   * a round's sampled negatives move very little, and on a large catalog they alone would
   * touch a third of the items (an index rebuild per round); the exact re-rank uses the true
   * vectors anyway.
   */
  reindexMove: number;
  /**
   * Event-loop time a round may spend re-linking changed items in place (most drifted first; 0 =
   * no limit): on a 1M-item catalog a re-link costs ~2.4 ms (and as much again on each search
   * thread's copy), and a round that moved tens of thousands of items would otherwise hold
   * the server for tens of seconds. The items left carry their drift to the next round; once
   * they are rebuildShare of the catalog, the index is rebuilt off the event loop.
   */
  reindexBudgetMs: number;
  /**
   * The most of one core's time index rebuilds may take: after a rebuild of T seconds, the next
   * one waits T·(1/duty − 1) seconds (rounds meanwhile re-link in place within the budget). A 1M
   * catalog's rebuild takes minutes, and rounds every minute would otherwise keep a core rebuilding.
   */
  rebuildDuty: number;
  providers: string[];
  /**
   * Users first seen online (not in the bundle) kept per version, at most (0 = no cap); past it
   * the least recently updated is forgotten: its next request is a cold start. Its interactions
   * stay in the log for the nightly retrain.
   */
  maxOnlineUsers: number;
  /** Log records applied per slice when a version is brought up to date; the event loop serves requests between slices. */
  replaySlice: number;
  /** A snapshot of the online state is written after this many records applied (0 = off) … */
  snapshotEvery: number;
  /** … or this many seconds after the last one if anything changed (0 = off); and always on close. */
  snapshotSeconds: number;
  /** Folder of the snapshots (createServer: models/NAME/online-state); unset = no snapshots. */
  snapshotDir?: string;
}

/** Where each online setting is declared, with its flag and range (core/defaults.ts). */
export const ONLINE_FIELDS = {
  steps: 'onlineSteps',
  mix: 'onlineMix',
  lr: 'onlineLr',
  reg: 'onlineReg',
  roundEvery: 'roundEvery',
  roundSeconds: 'roundSeconds',
  roundEpochs: 'roundEpochs',
  replay: 'roundReplay',
  roundLr: 'roundLr',
  rebuildShare: 'rebuildShare',
  reindexMove: 'reindexMove',
  reindexBudgetMs: 'reindexBudgetMs',
  rebuildDuty: 'rebuildDuty',
  providers: 'providers',
  maxOnlineUsers: 'maxOnlineUsers',
  replaySlice: 'replaySlice',
  snapshotEvery: 'snapshotEvery',
  snapshotSeconds: 'snapshotSeconds',
} as const;

export const ONLINE_DEFAULTS: OnlineConfig = defaultsFor(ONLINE_FIELDS);

/** With a re-link budget, the most drifted items a round lists for it (far more than a budget's worth: ~48 s of re-links at 1M items). */
const RELINK_LIST_MAX = 20_000;

/**
 * Until a rebuild has been timed here, one is assumed to insert this many items a second: this
 * machine's exports built the 1M-item index at 1,383 items/s and Tiktok's (6,710 items) at 6,157.
 */
const REBUILD_ITEMS_PER_SECOND = 1000;

/** Bound on interactions waiting for a round (rounds off, or falling behind). */
const MAX_RECENT = 200_000;

export class OnlineLearner {
  /** PUT /items records → items of a version (item-placer.ts). */
  readonly placer: ItemPlacer;
  /** Placements still computing (a put that reached a version without its vector), by `version:position`. */
  private readonly placements = new Map<string, Promise<void>>();
  /** Rounds' sampling (the immediate steps are seeded by each entry's position instead). */
  private rng = new Rng(12345);
  /** On a shared log: what applies the stream's entries (own and other replicas'). */
  follower: StreamFollower | null = null;
  /** Interactions since the last round, with the version whose rows and items they index (and the user, as rows are reused). */
  private recent = new NewestQueue<{ m: ServingModel; row: number; item: number; user: string }>(MAX_RECENT);
  private roundTimer: NodeJS.Timeout | null = null;
  private rounding: Promise<void> | null = null;
  /** Seconds per item of the last index rebuild timed here (0: none yet; then REBUILD_ITEMS_PER_SECOND is assumed). */
  private rebuildSecondsPerItem = 0;
  private closed = false;
  /** Stops an index rebuild in flight when the server closes. */
  private readonly closing = new AbortController();
  /** Per version: what online learning changed on it (for snapshots and the cap on online users). */
  private readonly states = new WeakMap<ServingModel, VersionState>();
  /** While a version is being brought up to date: the records acknowledged meanwhile, to apply to it before the swap. */
  private capture: { m: ServingModel; entries: LogEntry[] } | null = null;
  private snapshotTimer: NodeJS.Timeout | null = null;
  private snapshotting: Promise<void> | null = null;
  private snapshotAgain = false;
  private snapshotQueued = false;
  private readonly counters;
  /** Optional probe (benchmarks): milliseconds to durable and of the immediate update, per ingest. */
  onTiming?: (ackMs: number, updateMs: number, interactions: number) => void;
  /** Optional probe (tests): after each slice of a replay into a version being prepared. */
  onReplaySlice?: (m: ServingModel) => void;

  constructor(
    private readonly holder: ModelHolder,
    readonly log: InteractionLog | RedisStreamLog,
    private readonly cfg: OnlineConfig,
    private readonly metrics: ServerMetrics,
    private readonly logger: Logger,
  ) {
    this.placer = new ItemPlacer(logger, (m, row) => {
      const st = this.states.get(m);
      if (st && row < st.drift.length) st.drift[row] = 0; // placed at its current vector
    });
    const registers = [metrics.registry];
    const served = () => (holder.model ? this.states.get(holder.model) : undefined);
    new client.Gauge({ name: 'promptmm_online_users', help: 'Users first seen online held by the served version (capped by maxOnlineUsers)', registers, collect() { this.set(served()?.users.size ?? 0); } });
    new client.Gauge({ name: 'promptmm_online_snapshot_position', help: 'Log position of the served version\'s last online-state snapshot (written or loaded; 0 = none)', registers, collect() { this.set(served()?.snapshotPosition ?? 0); } });
    this.counters = {
      evictions: new client.Counter({ name: 'promptmm_online_user_evictions_total', help: 'Users first seen online forgotten by the served version (least recently updated, past maxOnlineUsers)', registers }),
      snapshots: new client.Counter({ name: 'promptmm_online_snapshots_total', help: 'Online-state snapshots written, by result', labelNames: ['result'] as const, registers }),
      replayed: new client.Counter({ name: 'promptmm_log_replayed_total', help: 'Log records replayed into versions being brought up to date', registers }),
    };
    if (cfg.snapshotDir && cfg.snapshotSeconds > 0) {
      this.snapshotTimer = setInterval(() => {
        const st = served();
        if (st?.changed) this.snapshotSoon();
      }, cfg.snapshotSeconds * 1000);
      this.snapshotTimer.unref();
    }
  }

  /** A rebuild's wait after one, as a multiple of its duration: 1/duty − 1 (rebuildDuty). */
  private rebuildGap(): number {
    return 1 / Math.min(1, this.cfg.rebuildDuty) - 1;
  }

  /** The version's online state (created on first use; public for tests). */
  stateOf(m: ServingModel): VersionState {
    let st = this.states.get(m);
    if (!st) {
      // Evictions re-enacted while a new version replays the log are not counted again.
      st = new VersionState(m, this.cfg.maxOnlineUsers, () => m === this.holder.model && this.counters.evictions.inc());
      // The version's index was just built (by the export): its first rebuild waits as if it had been one.
      const perItem = this.rebuildSecondsPerItem || 1 / REBUILD_ITEMS_PER_SECOND;
      st.nextRebuildAt = performance.now() + 1000 * perItem * m.nItems * this.rebuildGap();
      this.states.set(m, st);
    }
    return st;
  }

  /** Online-only users the version holds (for tests and metrics). */
  onlineUsers(m: ServingModel): number {
    return this.states.get(m)?.users.size ?? 0;
  }

  /** Validates against the served catalog, makes the known ones durable, then applies them. */
  async ingest(batch: Interaction[]): Promise<InteractionsReply> {
    const m = this.holder.model;
    if (!m) throw Object.assign(new Error('no model version loaded yet'), { statusCode: 503 });
    const rejected: InteractionsReply['rejected'] = [];
    const ok: LoggedInteraction[] = [];
    const now = Date.now();
    batch.forEach((x, index) => {
      if (!m.itemIndex.has(x.item)) rejected.push({ index, user: x.user, item: x.item, reason: 'unknown item (not in the served catalog)' });
      else ok.push(x.type === 'dislike' ? { user: x.user, item: x.item, ts: x.ts ?? now, kind: 'dislike' } : { user: x.user, item: x.item, ts: x.ts ?? now });
    });
    if (rejected.length) {
      this.metrics.interactionsRejected.inc(rejected.length);
      this.logger.warn({ rejected: rejected.slice(0, 5), count: rejected.length }, 'interactions rejected');
    }
    if (!ok.length) return { accepted: 0, rejected, log_position: this.log.position };
    if (this.follower) return this.ingestShared(ok, rejected);
    const t0 = performance.now();
    const position = await this.log.append(ok);
    this.metrics.ackSeconds.observe((performance.now() - t0) / 1000);
    // A version being brought up to date gets these before its swap (its replay may have read past them: skipped then).
    if (this.capture) {
      const first = position - ok.length + 1;
      for (let n = 0; n < ok.length; n++) this.capture.entries.push({ ...ok[n], position: first + n });
    }
    // Apply to whichever version is current now (a swap may have happened during the fsync).
    const cur = this.holder.model!;
    const t1 = performance.now();
    this.apply(cur, ok, position);
    const t2 = performance.now();
    this.metrics.updateSeconds.observe((t2 - t1) / 1000);
    this.onTiming?.(t1 - t0, t2 - t1, ok.length);
    this.metrics.interactionsAccepted.inc(ok.length);
    this.maybeRound();
    return { accepted: ok.length, rejected, log_position: position };
  }

  /**
   * A write to the shared stream: durable once Redis answers; answered once the follower has
   * applied it here, so this replica's next answer reflects it (other replicas follow within
   * their lag). A stream that cannot be reached is a 503: nothing was acknowledged.
   */
  private async ingestShared(ok: LoggedInteraction[], rejected: InteractionsReply['rejected']): Promise<InteractionsReply> {
    const follower = this.follower!;
    const t0 = performance.now();
    let position: number;
    try {
      position = await this.log.append(ok);
    } catch (err) {
      throw Object.assign(new Error(`the shared interaction log is unavailable: ${(err as Error).message}; retry`), { statusCode: 503 });
    }
    const t1 = performance.now();
    this.metrics.ackSeconds.observe((t1 - t0) / 1000);
    await follower.appliedThrough(position);
    this.onTiming?.(t1 - t0, performance.now() - t1, ok.length);
    // (Item puts and deletes travel the same way; they are not interactions.)
    const interactions = ok.filter((x) => x.kind === undefined || x.kind === 'interaction' || x.kind === 'dislike').length;
    if (interactions) this.metrics.interactionsAccepted.inc(interactions);
    if (ok.length === 1 && ok[0].kind === 'item_put') this.metrics.itemsPut.inc();
    return { accepted: ok.length, rejected, log_position: position };
  }

  /** Starts following a shared log: every entry after the served version's position is applied in order (server.ts). */
  follow(opts: FollowerOptions): StreamFollower {
    if (this.log instanceof InteractionLog) throw new Error('follow() needs a shared (Redis stream) log');
    this.follower = new StreamFollower(this.log, this.holder, this, opts, this.logger);
    this.follower.start();
    return this.follower;
  }

  /** Entries the follower read, for the served version and for a version being prepared (its capture). */
  async applyFollowed(m: ServingModel, entries: readonly LogEntry[]): Promise<void> {
    await this.precompute([m, this.capture?.m], entries);
    if (this.capture) this.capture.entries.push(...entries);
    this.applyEntries(m, entries);
  }

  /** Immediate effect on a model version: seen sets and user vectors. `lastPosition` is the last record's (positions consecutive). */
  apply(m: ServingModel, xs: LoggedInteraction[], lastPosition: number): void {
    const first = lastPosition - xs.length + 1;
    const st = this.stateOf(m);
    xs.forEach((x, n) => this.applyOne(m, st, x, first + n));
    this.applied(m, st, xs.length);
  }

  /** apply() for log entries, each with its own position (a read may skip quarantined ones). */
  applyEntries(m: ServingModel, entries: readonly LogEntry[]): void {
    const st = this.stateOf(m);
    for (const e of entries) this.applyOne(m, st, e, e.position);
    this.applied(m, st, entries.length);
  }

  private applyOne(m: ServingModel, st: VersionState, x: LoggedInteraction, position: number): void {
    if (position <= m.appliedPosition) return; // already in this version (absorbed, snapshotted or replayed)
    m.appliedPosition = position;
    const kind = x.kind ?? 'interaction';
    if (kind === 'item_put') return this.applyPut(m, x, position);
    const item = m.itemIndex.get(x.item);
    if (item === undefined) return;
    if (kind === 'dislike') return this.applyDislike(m, x.user, item);
    if (kind === 'item_delete') return this.applyDelete(m, item);
    if (kind !== 'interaction') return;
    if (m.sequences) return this.applyToSequence(m, st, x.user, item);
    const d = m.dim;
    // A user without history starts from its first item's vector; the steps below then move it.
    const { row, created } = st.users.rowFor(x.user, () => m.itemVectors.slice(item * d, (item + 1) * d));
    if (!created && m.seenCount(row) === 0) m.userVectors.set(m.itemVectors.subarray(item * d, (item + 1) * d), row * d);
    m.addSeen(row, item);
    graphStep(m, row, item, this.cfg.mix);
    // Seeded by the position: every replica (and every replay) draws the same negatives for this entry.
    const rng = new Rng(position);
    for (let s = 0; s < this.cfg.steps; s++) bprStep(m, row, item, sampleNegative(m, row, rng), this.cfg.lr, this.cfg.reg);
    st.userMoved(row);
    m.cache.dropUser(x.user);
    m.candidates.dropUser(row);
    if (m === this.holder.model && (this.cfg.roundEvery > 0 || this.cfg.roundSeconds > 0 || this.recent.length < MAX_RECENT)) {
      this.recent.push({ m, row, item, user: x.user });
    }
  }

  /**
   * A dislike (issue 18): the item leaves every answer to that user (the version's catalog, by
   * user id); a user with a vector takes `steps` steps away from it (not a sequential version:
   * its vectors come from the sequence). Not a seen item, not a round's positive.
   */
  private applyDislike(m: ServingModel, user: string, item: number): void {
    m.catalog.dislike(user, item);
    const row = m.userIndex.get(user);
    if (row !== undefined) {
      if (!m.sequences) for (let s = 0; s < this.cfg.steps; s++) dislikeStep(m, row, item, this.cfg.lr, this.cfg.reg);
      m.candidates.dropUser(row);
      if (!m.sequences) this.stateOf(m).userMoved(row);
    }
    m.cache.dropUser(user);
  }

  /** DELETE /items (issue 18): the item leaves every answer (the filter of every request reads `hidden`); cached answers go. */
  private applyDelete(m: ServingModel, item: number): void {
    m.hideItem(item);
  }

  /** PUT /items (item-placer.ts); a placement still computing is kept for the request that made it. */
  private applyPut(m: ServingModel, x: LoggedInteraction, position: number): void {
    const p = this.placer.apply(m, x, position);
    if (!p) return;
    const key = `${m.version}:${position}`;
    const kept = p.finally(() => this.placements.delete(key));
    this.placements.set(key, kept);
  }

  /**
   * Adds or replaces an item (PUT /items; the route validated the features against the served
   * version's encoder): its vector is computed before the record is made durable (an encoder
   * failure acknowledges nothing), for the served version and for one being brought up to date;
   * resolves once the item is in the served version's answers.
   */
  async putItem(id: string, features: Record<string, Float32Array>, labels: string[]): Promise<{ log_position: number; created: boolean; row: number; version: number }> {
    const m = this.holder.model;
    if (!m) throw Object.assign(new Error('no model version loaded yet'), { statusCode: 503 });
    const created = !m.itemIndex.has(id);
    const rec: LoggedInteraction = { user: '', item: id, ts: Date.now(), kind: 'item_put', features, labels };
    if (this.follower) {
      const { log_position } = await this.ingestShared([rec], []);
      const cur = this.holder.model!;
      await this.placements.get(`${cur.version}:${log_position}`);
      return { log_position, created, row: cur.itemIndex.get(id) ?? -1, version: cur.version };
    }
    const targets = [...new Set([m, this.capture?.m])].filter((t): t is ServingModel => !!t && needsVector(t, id));
    const vectors = await Promise.all(targets.map((t) => this.placer.embed(t, features)));
    const position = await this.log.append([rec]);
    targets.forEach((t, i) => this.placer.store(t, position, vectors[i]));
    if (this.capture) this.capture.entries.push({ ...rec, position });
    const cur = this.holder.model!;
    this.apply(cur, [rec], position);
    await this.placements.get(`${cur.version}:${position}`);
    this.metrics.itemsPut.inc();
    return { log_position: position, created, row: cur.itemIndex.get(id) ?? -1, version: cur.version };
  }

  /** Vectors of the puts among the records, for the versions that will apply them (before the synchronous apply). */
  private async precompute(versions: readonly (ServingModel | null | undefined)[], entries: readonly LogEntry[]): Promise<void> {
    const puts = entries.filter((e) => e.kind === 'item_put');
    if (!puts.length) return;
    try {
      await this.placer.precompute(versions, puts);
    } catch (err) {
      // Never a stuck replay or follower: the records are applied anyway, their items placed when the encoder answers (or out of answers until put again).
      this.logger.error({ puts: puts.length, err: (err as Error).message }, 'item encoder failed on logged puts: applying them, items placed later');
    }
  }

  /** Resolves once no item placement is still computing (a version about to be published: cli/finetune.ts). */
  async placementsSettled(): Promise<void> {
    while (this.placements.size) await Promise.all([...this.placements.values()]);
  }

  /**
   * Makes an item deletion durable, then applies it to the served version: 404-style error for
   * an item the served catalog does not hold; resolves with the log position.
   */
  async deleteItem(id: string): Promise<{ log_position: number; already: boolean }> {
    const m = this.holder.model;
    if (!m) throw Object.assign(new Error('no model version loaded yet'), { statusCode: 503 });
    const row = m.itemIndex.get(id);
    if (row === undefined) throw Object.assign(new Error(`item ${JSON.stringify(id.slice(0, 80))} is not in the served catalog (version ${m.version})`), { statusCode: 404 });
    // (Not `hidden`: an added item waiting for its vector is hidden but not deleted.)
    if (m.catalog.deleted.has(row)) return { log_position: this.log.position, already: true };
    const rec: LoggedInteraction = { user: '', item: id, ts: Date.now(), kind: 'item_delete' };
    // On a shared log the follower applies it, here and on every replica, in stream order.
    if (this.follower) return { log_position: (await this.ingestShared([rec], [])).log_position, already: false };
    const position = await this.log.append([rec]);
    if (this.capture) this.capture.entries.push({ ...rec, position });
    this.apply(this.holder.model!, [rec], position);
    return { log_position: position, already: false };
  }

  /** A sequential version's immediate update: the item is appended to the user's sequence (the encoder reads it on the next answer). */
  private applyToSequence(m: ServingModel, st: VersionState, user: string, item: number): void {
    // A user new to the version gets a row (its table vector is never read: answers come from the encoder).
    const { row } = st.users.rowFor(user, () => new Float32Array(m.dim));
    m.addSeen(row, item);
    m.sequences!.append(row, item);
    m.cache.dropUser(user);
    m.candidates.dropUser(row);
  }

  /** After records were applied: the served version counts toward its next snapshot. */
  private applied(m: ServingModel, st: VersionState, n: number): void {
    if (m !== this.holder.model) return;
    st.sinceSnapshot += n;
    if (this.cfg.snapshotEvery > 0 && st.sinceSnapshot >= this.cfg.snapshotEvery) this.snapshotSoon();
  }

  /**
   * Brings a loaded version up to date with the log before it is swapped in, without holding the
   * event loop: its snapshot (if one of this very bundle and log exists), then the log records
   * after that position in slices (on a worker while another version serves), then the records
   * acknowledged meanwhile, until few are left. Resolves with the last step, which the caller
   * runs synchronously right before the swap: it applies those few, so no acknowledged
   * interaction can fall between the replay and the swap.
   */
  async prepare(m: ServingModel, signal?: AbortSignal): Promise<() => void> {
    const st = this.stateOf(m);
    // From here every acknowledged record is also kept for `m`: the read below covers what was durable before.
    const capture = { m, entries: [] as LogEntry[] };
    this.capture = capture;
    // The file read stops at what is durable now: later records arrive through the capture, and a
    // record still being written (its fdatasync may yet fail, its position be reused) is not one to read.
    const durable = this.log.position;
    try {
      const reindex = await this.loadSnapshot(m, st);
      const from = m.appliedPosition;
      const t0 = performance.now();
      let replayed = 0;
      const background = this.holder.model !== null;
      if (!(this.log instanceof InteractionLog)) {
        replayed = await this.replayStream(m, this.log, signal);
      } else if (this.log.position > from) {
        if (background) {
          for await (const slice of readLogSlices(this.log.dir, from, durable, this.cfg.replaySlice, signal)) {
            await this.precompute([m], slice);
            this.applyEntries(m, slice);
            replayed += slice.length;
            this.onReplaySlice?.(m);
            // A worker's messages that arrive while one is handled are handled in the same turn
            // (up to 1000): without this the whole replay would run in one.
            await yieldToRequests();
          }
        } else {
          // Nothing is served yet, so nothing waits: one read on this thread is cheaper than a worker's open and read.
          const entries = this.log.read(from);
          for (let k = 0; k < entries.length; k += this.cfg.replaySlice) {
            const slice = entries.slice(k, k + this.cfg.replaySlice);
            await this.precompute([m], slice);
            this.applyEntries(m, slice);
            this.onReplaySlice?.(m);
            await yieldToRequests();
            signal?.throwIfAborted();
          }
          replayed = entries.length;
        }
      }
      // What was acknowledged meanwhile, while it is more than a slice (acknowledgements keep coming).
      for (let rest = this.pendingFor(capture); rest.length > this.cfg.replaySlice; rest = this.pendingFor(capture)) {
        for (let k = 0; k < rest.length; k += this.cfg.replaySlice) {
          const slice = rest.slice(k, k + this.cfg.replaySlice);
          await this.precompute([m], slice);
          this.applyEntries(m, slice);
          this.onReplaySlice?.(m);
          await yieldToRequests();
          signal?.throwIfAborted();
        }
        replayed += rest.length;
      }
      // The puts among the last few (applied synchronously at the swap) get their vectors now.
      await this.precompute([m], this.pendingFor(capture));
      if (reindex.length) await this.reindex(m, reindex, signal);
      signal?.throwIfAborted();
      if (replayed) {
        this.counters.replayed.inc(replayed);
        this.logger.info({ version: m.version, replayed, from, to: m.appliedPosition, seconds: +((performance.now() - t0) / 1000).toFixed(3), background }, 'interaction log replayed into the new version');
      }
    } catch (err) {
      if (this.capture === capture) this.capture = null;
      throw err;
    }
    return () => {
      const rest = this.pendingFor(capture);
      // The read covered everything durable when the capture began and the capture everything after: a gap means a lost record.
      if (rest.length && rest[0].position > m.appliedPosition + 1) {
        this.capture = null;
        throw new Error(`replay gap: the log was applied up to position ${m.appliedPosition} but the next acknowledged record is ${rest[0].position}`);
      }
      this.applyEntries(m, rest);
      if (this.capture === capture) this.capture = null;
      this.onSwap();
      // Once swapped in (after this turn): a restart after a crash then replays from here, not from the bundle's position.
      if (this.cfg.snapshotEvery > 0 || this.cfg.snapshotSeconds > 0) this.snapshotSoon();
    };
  }

  /** A version brought up to date from the shared stream, a slice at a time (requests are served between slices). */
  private async replayStream(m: ServingModel, log: RedisStreamLog, signal?: AbortSignal): Promise<number> {
    let replayed = 0;
    for (;;) {
      const entries = await log.read(m.appliedPosition, this.cfg.replaySlice);
      if (!entries.length) return replayed;
      if (entries[0].position !== m.appliedPosition + 1) {
        throw new Error(`the shared log no longer holds positions ${m.appliedPosition + 1}–${entries[0].position - 1} that version ${m.version} has not absorbed (trimmed too early?)`);
      }
      await this.precompute([m], entries);
      this.applyEntries(m, entries);
      replayed += entries.length;
      this.onReplaySlice?.(m);
      await yieldToRequests();
      signal?.throwIfAborted();
    }
  }

  /** The local segment log (snapshots name its folder); never called on a shared log, where snapshots are off. */
  private get localLog(): InteractionLog {
    if (!(this.log instanceof InteractionLog)) throw new Error('snapshots need the local interaction log');
    return this.log;
  }

  /** Captured records the version does not have yet, in position order. */
  private pendingFor(capture: { m: ServingModel; entries: LogEntry[] }): LogEntry[] {
    const after = capture.m.appliedPosition;
    capture.entries = capture.entries.filter((e) => e.position > after);
    return capture.entries.sort((a, b) => a.position - b.position).slice();
  }

  /**
   * Loads the version's snapshot when one fits it; returns the items to re-index. A snapshot that
   * does not fit is logged and ignored (the log replays from the bundle's position). It holds
   * vectors and seen items, not the catalog: the puts, deletes and dislikes up to its position
   * are re-applied from the log first (their vectors already took the dislikes' steps), so the
   * items added online have the rows its seen items and moved items refer to.
   */
  private async loadSnapshot(m: ServingModel, st: VersionState): Promise<number[]> {
    const dir = this.cfg.snapshotDir;
    // Snapshots hold vector state; a sequential version's state is its sequences, rebuilt by the replay.
    if (!dir || m.sequences) return [];
    const file = snapshotPath(dir, m.version);
    const bundlePosition = m.appliedPosition;
    let snap: Snapshot | null;
    let why: string | null;
    let catalog: LogEntry[] = [];
    try {
      snap = readSnapshot(file);
      if (snap && snap.header.position > bundlePosition) {
        for (const e of this.localLog.read(bundlePosition)) {
          if (e.position > snap.header.position) break;
          if (e.kind === 'dislike' || e.kind === 'item_delete' || e.kind === 'item_put') catalog.push(e);
        }
      }
      why = snap && checkSnapshot(snap, m, this.localLog.dir, this.localLog.position, m.nItems + addedIds(m, catalog));
    } catch (err) {
      snap = null;
      why = (err as Error).message;
    }
    if (why) this.logger.warn({ version: m.version, file, reason: why }, 'online-state snapshot not used: replaying the log from the bundle\'s position');
    if (!snap || why) return [];
    await this.precompute([m], catalog);
    for (const e of catalog) {
      if (e.kind === 'item_put') {
        await this.placer.apply(m, e, e.position);
        continue;
      }
      const item = m.itemIndex.get(e.item);
      if (item === undefined) continue;
      if (e.kind === 'dislike') m.catalog.dislike(e.user, item);
      else m.hideItem(item);
    }
    if (m.nItems !== snap.header.items) throw new Error(`online-state snapshot ${file}: it holds ${snap.header.items} items, but the log's puts up to its position make ${m.nItems}`);
    // Checked whole above, so this does not fail half-way (an error here refuses the version, never a half-restored one served).
    const reindex = restoreSnapshot(snap, st, this.cfg.reindexMove);
    this.logger.info({ version: m.version, position: snap.header.position, onlineUsers: st.users.size, usersMoved: snap.sections.userRows.length, itemsMoved: snap.sections.itemRows.length, itemsAdded: m.nItems - m.bundleItems }, 'online-state snapshot loaded');
    return reindex;
  }

  /** Items a snapshot moved: the version's ANN index and exact scorer are brought to the new vectors. */
  private async reindex(m: ServingModel, items: number[], signal?: AbortSignal): Promise<void> {
    const live = () => !(signal?.aborted ?? false) && !this.closed;
    const rebuild = items.length >= this.cfg.rebuildShare * m.nItems;
    if ((await refreshAnn(m, items, rebuild, live, signal ?? this.closing.signal)) === null || !(await m.replaceExact(live, this.logger))) {
      throw new Error('cancelled while re-indexing the items of the online-state snapshot');
    }
    if (rebuild) this.stateOf(m).drift.fill(0);
  }

  private maybeRound(): void {
    // On a shared log rounds are the lease holder's (promptmm finetune), published as versions.
    if (this.closed || this.follower) return;
    if (this.cfg.roundEvery > 0 && this.recent.length >= this.cfg.roundEvery) {
      // A round in flight calls this again when it ends: not joining it here spares a promise
      // reaction per interaction during a long round (a 1M-item index rebuild takes minutes).
      if (!this.rounding) this.roundInBackground();
    } else if (this.cfg.roundSeconds > 0 && !this.roundTimer && this.recent.length) {
      this.roundTimer = setTimeout(() => {
        this.roundTimer = null;
        this.roundInBackground();
      }, this.cfg.roundSeconds * 1000);
      this.roundTimer.unref();
    }
  }

  private roundInBackground(): void {
    this.round().catch(() => {}); // (logged by round())
  }

  /** A version swap: interactions recorded against the old version's rows are not the new one's to train on (its replay covers them). */
  onSwap(): void {
    this.recent.clear();
  }

  /**
   * The finetune worker's round covers every interaction the version holds beyond its bundle (its
   * online seen items), those replayed before it was served included, not only those since.
   */
  queueAllOnline(m: ServingModel): void {
    const idOf = new Map<number, string>();
    for (const [id, row] of m.userIndex) if (m.extraSeen.has(row)) idOf.set(row, id);
    this.recent.clear();
    for (const [row, items] of m.extraSeen) for (const item of items) this.recent.push({ m, row, item, user: idOf.get(row)! });
  }

  /** One background fine-tuning round (one at a time); resolves when its updates are live. */
  round(): Promise<void> {
    if (!this.rounding) {
      // The failure is logged before the next round can start (the load test pairs the lines in order).
      this.rounding = this.runRound().catch((err: Error) => {
        this.logger.error({ err: err.message }, 'fine-tuning round failed; its vector steps stay, the index and the exact path were not refreshed');
        throw err;
      }).finally(() => {
        this.rounding = null;
        if (this.recent.length && !this.closed) this.maybeRound();
      });
    }
    return this.rounding;
  }

  private async runRound(): Promise<void> {
    const m = this.holder.model;
    // (A user forgotten since, past maxOnlineUsers, may have left its row to another.)
    const recent = this.recent.take().filter((r) => r.m === m && m.userIndex.get(r.user) === r.row);
    if (!m || !recent.length) return;
    const st = this.stateOf(m);
    // Swapped or closing: the round stops (the next version replays the log; a retired one's index and scorer are going away).
    const live = () => m === this.holder.model && !this.closed;
    const t0 = performance.now();
    this.logger.info({ interactions: recent.length }, 'fine-tuning round started');
    const pairs = trainingPairs(m, recent, this.cfg.replay, this.rng);
    const onStep = (row: number, item: number, neg: number) => {
      st.userMoved(row);
      st.itemMoved(item);
      st.itemMoved(neg);
    };
    const moved = await trainPairs(m, pairs, { epochs: this.cfg.roundEpochs, lr: this.cfg.roundLr, reg: this.cfg.reg }, this.rng, live, onStep);
    if (!moved) return;
    const tSgd = performance.now();
    const touched = st.addDrift(moved);
    const budget = this.cfg.reindexBudgetMs > 0 ? this.cfg.reindexBudgetMs : Infinity;
    const { items: changed, total } = await itemsToReindex(m, st.drift, this.cfg.reindexMove, Number.isFinite(budget) ? RELINK_LIST_MAX : Infinity);
    if (!live()) return;
    const rebuilt = total >= this.cfg.rebuildShare * m.nItems && performance.now() >= st.nextRebuildAt;
    const linked = await refreshAnn(m, changed, rebuilt, live, this.closing.signal, budget);
    if (linked === null) return;
    const tAnn = performance.now();
    // A rebuild indexed every item at the table it copied (items only move in rounds, one at a time).
    if (rebuilt) {
      st.drift.fill(0);
      this.rebuildSecondsPerItem = (tAnn - tSgd) / 1000 / m.nItems;
      st.nextRebuildAt = tAnn + (tAnn - tSgd) * this.rebuildGap();
    } else for (let k = 0; k < linked; k++) st.drift[changed[k]] = 0;
    if (!(await m.replaceExact(live, this.logger))) return;
    const seconds = (performance.now() - t0) / 1000;
    this.metrics.roundSeconds.observe(seconds);
    this.logger.info({ interactions: recent.length, pairs: pairs.length * this.cfg.roundEpochs, itemsMoved: touched, itemsReindexed: rebuilt ? m.nItems : linked, itemsDeferred: rebuilt ? 0 : total - linked, ann: rebuilt ? 'rebuilt' : 'relinked', seconds: +seconds.toFixed(3), phases: { sgd: +((tSgd - t0) / 1000).toFixed(3), ann: +((tAnn - tSgd) / 1000).toFixed(3), onnx: +((performance.now() - tAnn) / 1000).toFixed(3) } }, 'fine-tuning round done');
  }

  /** A snapshot after the current event-loop turn (not on the path of the request that triggered it), or after the one in flight. */
  private snapshotSoon(): void {
    if (this.snapshotting || this.snapshotQueued) {
      if (this.snapshotting) this.snapshotAgain = true;
      return;
    }
    this.snapshotQueued = true;
    setImmediate(() => {
      this.snapshotQueued = false;
      if (!this.closed) void this.saveSnapshot();
    });
  }

  /**
   * Writes the served version's online state (at its applied log position) to its snapshot,
   * atomically: on a worker thread, or on this one with `sync` (shutdown: nothing left to
   * serve). One write at a time; resolves true once written, false when there was nothing to
   * write or it failed (logged and counted: the log still holds everything, a restart replays more).
   */
  saveSnapshot(o: { sync?: boolean } = {}): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      await this.snapshotting?.catch(() => undefined);
      const dir = this.cfg.snapshotDir;
      const m = this.holder.model;
      const st = m && this.states.get(m);
      if (!dir || !m || !st || m.sequences || (!st.changed && st.snapshotPosition === m.appliedPosition)) return false;
      const t0 = performance.now();
      const file = snapshotPath(dir, m.version);
      try {
        mkdirSync(dir, { recursive: true });
        let parts: SnapshotParts;
        let bytes: number;
        let captureMs: number;
        if (o.sync) {
          parts = captureSnapshotSync(st, this.localLog.dir);
          const data = serializeSnapshot(parts);
          captureMs = performance.now() - t0;
          writeSnapshotFile(dir, file, data);
          bytes = data.length;
        } else {
          // Copied in slices (consistent at the one position it records), serialized and written on a worker.
          parts = await captureSnapshot(st, this.localLog.dir, yieldToRequests);
          captureMs = performance.now() - t0;
          bytes = await writeInWorker(dir, file, parts);
        }
        removeOtherSnapshots(dir, file);
        st.snapshotPosition = parts.header.position;
        this.counters.snapshots.inc({ result: 'ok' });
        this.logger.info({ version: m.version, position: parts.header.position, bytes, onlineUsers: parts.header.onlineIds.length, captureMs: +captureMs.toFixed(1), seconds: +((performance.now() - t0) / 1000).toFixed(3) }, 'online-state snapshot written');
        return true;
      } catch (err) {
        st.changed = true;
        this.counters.snapshots.inc({ result: 'failed' });
        this.logger.error({ version: m.version, file, err: (err as Error).message }, 'online-state snapshot failed (a restart replays the log from the previous one)');
        return false;
      }
    };
    const p = run();
    const chained = p.then(() => undefined).finally(() => {
      if (this.snapshotting === chained) this.snapshotting = null;
      if (this.snapshotAgain && !this.closed) {
        this.snapshotAgain = false;
        this.snapshotSoon();
      }
    });
    this.snapshotting = chained;
    return p;
  }

  /** Resolves once no snapshot write is in flight (tests; the shutdown path waits for it anyway). */
  async snapshotsSettled(): Promise<void> {
    for (;;) {
      if (this.snapshotQueued) await yieldToRequests();
      else if (this.snapshotting) await this.snapshotting.catch(() => undefined);
      else return;
    }
  }

  /** Stops rounds and snapshots, writes the last snapshot (the state at the last applied record), closes the log. */
  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    if (this.roundTimer) clearTimeout(this.roundTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    await this.rounding?.catch(() => undefined);
    await this.follower?.stop();
    await this.saveSnapshot({ sync: true });
    await this.log.close();
  }
}

const yieldToRequests = () => new Promise<void>((r) => setImmediate(r));

/** How many new item ids the puts among `entries` add to the version (rows are handed out in log order). */
function addedIds(m: ServingModel, entries: readonly LogEntry[]): number {
  const ids = new Set<string>();
  for (const e of entries) if (e.kind === 'item_put' && !m.itemIndex.has(e.item) && cannotPlace(m) === null && e.features && fitsEncoder(m, e.features)) ids.add(e.item);
  return ids.size;
}


/** serializeSnapshot + writeSnapshotFile on a worker thread (the copied arrays are moved there); resolves with the bytes written. */
function writeInWorker(dir: string, file: string, parts: SnapshotParts): Promise<number> {
  const transferList = Object.values(parts.sections).map((a) => a.buffer as ArrayBuffer);
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./snapshot-write-worker.js', import.meta.url), { workerData: { dir, file, parts }, transferList });
    let bytes: number | null = null;
    worker.once('message', (n: number) => (bytes = n));
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 && bytes !== null ? resolve(bytes) : reject(new Error(`snapshot writer exited with code ${code}`))));
  });
}
