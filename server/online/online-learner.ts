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
 */
import type { Logger } from 'pino';
import { Rng } from '../../core/rng.js';
import { DEFAULTS } from '../../core/defaults.js';
import { NewestQueue } from './newest-queue.js';
import { movedItems, refreshAnn, refreshExact, trainingPairs, trainPairs } from './round.js';
import { bprStep, graphStep, sampleNegative } from './steps.js';
import type { InteractionLog, LoggedInteraction } from '../../repository/interaction-log.js';
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
  providers: string[];
}

/** From core/defaults.ts, where each is declared with its flag and range. */
export const ONLINE_DEFAULTS: OnlineConfig = { steps: DEFAULTS.onlineSteps, mix: DEFAULTS.onlineMix, lr: DEFAULTS.onlineLr, reg: DEFAULTS.onlineReg, roundEvery: DEFAULTS.roundEvery, roundSeconds: DEFAULTS.roundSeconds, roundEpochs: DEFAULTS.roundEpochs, replay: DEFAULTS.roundReplay, roundLr: DEFAULTS.roundLr, rebuildShare: DEFAULTS.rebuildShare, reindexMove: DEFAULTS.reindexMove, providers: [...DEFAULTS.providers] };

/** Bound on interactions waiting for a round (rounds off, or falling behind). */
const MAX_RECENT = 200_000;

export class OnlineLearner {
  private rng = new Rng(12345);
  /** Interactions since the last round, with the version whose rows and items they index. */
  private recent = new NewestQueue<{ m: ServingModel; row: number; item: number }>(MAX_RECENT);
  private roundTimer: NodeJS.Timeout | null = null;
  private rounding: Promise<void> | null = null;
  private closed = false;
  /** Stops an index rebuild in flight when the server closes. */
  private readonly closing = new AbortController();
  /** Optional probe (benchmarks): milliseconds to durable and of the immediate update, per ingest. */
  onTiming?: (ackMs: number, updateMs: number, interactions: number) => void;

  constructor(
    private readonly holder: ModelHolder,
    readonly log: InteractionLog,
    private readonly cfg: OnlineConfig,
    private readonly metrics: ServerMetrics,
    private readonly logger: Logger,
  ) {}

  /** Validates against the served catalog, makes the known ones durable, then applies them. */
  async ingest(batch: Interaction[]): Promise<InteractionsReply> {
    const m = this.holder.model;
    if (!m) throw Object.assign(new Error('no model version loaded yet'), { statusCode: 503 });
    const rejected: InteractionsReply['rejected'] = [];
    const ok: LoggedInteraction[] = [];
    const now = Date.now();
    batch.forEach((x, index) => {
      if (!m.itemIndex.has(x.item)) rejected.push({ index, user: x.user, item: x.item, reason: 'unknown item (not in the served catalog)' });
      else ok.push({ user: x.user, item: x.item, ts: x.ts ?? now });
    });
    if (rejected.length) {
      this.metrics.interactionsRejected.inc(rejected.length);
      this.logger.warn({ rejected: rejected.slice(0, 5), count: rejected.length }, 'interactions rejected');
    }
    if (!ok.length) return { accepted: 0, rejected, log_position: this.log.position };
    const t0 = performance.now();
    const position = await this.log.append(ok);
    this.metrics.ackSeconds.observe((performance.now() - t0) / 1000);
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

  /** Immediate effect on a model version: seen sets and user vectors. `lastPosition` is the last record's. */
  apply(m: ServingModel, xs: LoggedInteraction[], lastPosition: number): void {
    const d = m.dim;
    const first = lastPosition - xs.length + 1;
    xs.forEach((x, n) => {
      if (first + n <= m.appliedPosition) return; // already in this version (absorbed or replayed)
      const item = m.itemIndex.get(x.item);
      if (item === undefined) return;
      // A user without history starts from its first item's vector; the steps below then move it.
      let row = m.userIndex.get(x.user);
      if (row === undefined) row = m.addUser(x.user, m.itemVectors.slice(item * d, (item + 1) * d));
      else if (m.seenCount(row) === 0) m.userVectors.set(m.itemVectors.subarray(item * d, (item + 1) * d), row * d);
      m.addSeen(row, item);
      graphStep(m, row, item, this.cfg.mix);
      for (let s = 0; s < this.cfg.steps; s++) bprStep(m, row, item, sampleNegative(m, row, this.rng), this.cfg.lr, this.cfg.reg);
      m.cache.dropUser(x.user);
      m.candidates.dropUser(row);
      if (m === this.holder.model && (this.cfg.roundEvery > 0 || this.cfg.roundSeconds > 0 || this.recent.length < MAX_RECENT)) {
        this.recent.push({ m, row, item });
      }
    });
    m.appliedPosition = Math.max(m.appliedPosition, lastPosition);
  }

  private maybeRound(): void {
    if (this.closed) return;
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
    this.round().catch((err) => this.logger.error({ err: (err as Error).message }, 'fine-tuning round failed; the served vectors stay as they were'));
  }

  /** A version swap: interactions recorded against the old version's rows are not the new one's to train on (its replay covers them). */
  onSwap(): void {
    this.recent.clear();
  }

  /** One background fine-tuning round (one at a time); resolves when its updates are live. */
  round(): Promise<void> {
    if (!this.rounding) {
      this.rounding = this.runRound().finally(() => {
        this.rounding = null;
        if (this.recent.length && !this.closed) this.maybeRound();
      });
    }
    return this.rounding;
  }

  private async runRound(): Promise<void> {
    const m = this.holder.model;
    const recent = this.recent.take().filter((r) => r.m === m);
    if (!m || !recent.length) return;
    // Swapped or closing: the round stops (the next version replays the log; a retired one's index and scorer are going away).
    const live = () => m === this.holder.model && !this.closed;
    const t0 = performance.now();
    const pairs = trainingPairs(m, recent, this.cfg.replay, this.rng);
    const moved = await trainPairs(m, pairs, { epochs: this.cfg.roundEpochs, lr: this.cfg.roundLr, reg: this.cfg.reg }, this.rng, live);
    if (!moved) return;
    const tSgd = performance.now();
    const { touched, changed } = movedItems(m, moved, this.cfg.reindexMove);
    const rebuilt = changed.length >= this.cfg.rebuildShare * m.nItems;
    if (!(await refreshAnn(m, changed, rebuilt, live, this.closing.signal))) return;
    const tAnn = performance.now();
    if (!(await refreshExact(m, live, this.logger))) return;
    const seconds = (performance.now() - t0) / 1000;
    this.metrics.roundSeconds.observe(seconds);
    this.logger.info({ interactions: recent.length, pairs: pairs.length * this.cfg.roundEpochs, itemsMoved: touched, itemsReindexed: changed.length, ann: rebuilt ? 'rebuilt' : 'relinked', seconds: +seconds.toFixed(3), phases: { sgd: +((tSgd - t0) / 1000).toFixed(3), ann: +((tAnn - tSgd) / 1000).toFixed(3), onnx: +((performance.now() - tAnn) / 1000).toFixed(3) } }, 'fine-tuning round done');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    if (this.roundTimer) clearTimeout(this.roundTimer);
    await this.rounding?.catch(() => undefined);
    await this.log.close();
  }
}
