/**
 * Learning while serving. POST /interactions → validated → appended to the durable log →
 * acknowledged → applied at once: the user's seen set gains the items and the user's vector
 * takes a few BPR steps against sampled negatives (item vectors fixed); a new user starts from
 * the mean of its items' vectors. Every N interactions or T seconds a background round of BPR
 * on recent interactions plus a replayed sample of old ones moves user and item vectors; the
 * changed items are updated in the HNSW index in place and the exact path's ONNX table is
 * rebuilt and swapped. The round yields to the event loop between small chunks, so requests
 * are never blocked for its duration.
 */
import type { Logger } from 'pino';
import { buildScoringModel } from '../../repository/onnx-scoring-graph.js';
import { Rng } from '../../core/rng.js';
import { DEFAULTS } from '../../core/defaults.js';
import { rebuildAnnIndex } from './ann-rebuild.js';
import { NewestQueue } from './newest-queue.js';
import { ExactScorer } from '../retrieval/exact-scorer.js';
import type { InteractionLog, LoggedInteraction } from '../../repository/interaction-log.js';
import type { ServerMetrics } from '../common/metrics.js';
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

export interface IngestResult {
  accepted: number;
  rejected: { index: number; user: string; item: string; reason: string }[];
  log_position: number;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
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
  async ingest(batch: { user: string; item: string; ts?: number }[]): Promise<IngestResult> {
    const m = this.holder.model;
    if (!m) throw Object.assign(new Error('no model version loaded yet'), { statusCode: 503 });
    const rejected: IngestResult['rejected'] = [];
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
      let row = m.userIndex.get(x.user);
      if (row === undefined) row = m.addUser(x.user, m.itemVectors.slice(item * d, (item + 1) * d));
      else if (m.seenCount(row) === 0) m.userVectors.set(m.itemVectors.subarray(item * d, (item + 1) * d), row * d);
      m.addSeen(row, item);
      this.graphStep(m, row, item);
      this.userSteps(m, row, item);
      m.cache.dropUser(x.user);
      m.candidates.dropUser(row);
      if (m === this.holder.model && (this.cfg.roundEvery > 0 || this.cfg.roundSeconds > 0 || this.recent.length < MAX_RECENT)) {
        this.recent.push({ m, row, item });
      }
    });
    m.appliedPosition = Math.max(m.appliedPosition, lastPosition);
  }

  private negative(m: ServingModel, row: number): number {
    for (let t = 0; t < 20; t++) {
      const j = this.rng.int(m.nItems);
      if (!m.isSeen(row, j)) return j;
    }
    return this.rng.int(m.nItems);
  }

  private graphStep(m: ServingModel, row: number, item: number): void {
    if (this.cfg.mix <= 0) return;
    const d = m.dim;
    const u = m.userVectors;
    const I = m.itemVectors;
    let nu = 0;
    let ni = 0;
    for (let c = 0; c < d; c++) {
      nu += u[row * d + c] ** 2;
      ni += I[item * d + c] ** 2;
    }
    nu = Math.sqrt(nu);
    ni = Math.sqrt(ni) || 1;
    const w = this.cfg.mix / Math.sqrt(m.seenCount(row));
    let nn = 0;
    for (let c = 0; c < d; c++) {
      u[row * d + c] += w * (nu / ni) * I[item * d + c];
      nn += u[row * d + c] ** 2;
    }
    const scale = nu / (Math.sqrt(nn) || 1);
    for (let c = 0; c < d; c++) u[row * d + c] *= scale;
  }

  /** A few BPR steps on the user's vector only: -log σ(u·(i − j)) + reg‖u‖². */
  private userSteps(m: ServingModel, row: number, item: number): void {
    const d = m.dim;
    const u = m.userVectors;
    const I = m.itemVectors;
    const ub = row * d;
    for (let s = 0; s < this.cfg.steps; s++) {
      const jb = this.negative(m, row) * d;
      const ib = item * d;
      let x = 0;
      for (let c = 0; c < d; c++) x += u[ub + c] * (I[ib + c] - I[jb + c]);
      const g = 1 - sigmoid(x);
      for (let c = 0; c < d; c++) u[ub + c] += this.cfg.lr * (g * (I[ib + c] - I[jb + c]) - this.cfg.reg * u[ub + c]);
    }
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
    const t0 = performance.now();
    const d = m.dim;
    let U = m.userVectors; // re-read after every yield: online users may grow (reallocate) the table
    const I = m.itemVectors;
    const lr = this.cfg.roundLr;
    const reg = this.cfg.reg;
    // Summed step lengths per item: an upper bound of how far each item moved in this round.
    const moved = new Float32Array(m.nItems);
    const grad = new Float32Array(d);
    // Training pairs: the recent ones, each with `replay` old (user, train item) pairs sampled uniformly.
    const pairs: { row: number; item: number }[] = [];
    for (const p of recent) {
      pairs.push(p);
      for (let r = 0; r < this.cfg.replay && m.seenItems.length; r++) {
        const e = this.rng.int(m.seenItems.length);
        let lo = 0;
        let hi = m.seenOffsets.length - 2;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (m.seenOffsets[mid] <= e) lo = mid;
          else hi = mid - 1;
        }
        pairs.push({ row: lo, item: m.seenItems[e] });
      }
    }
    let n = 0;
    for (let epoch = 0; epoch < this.cfg.roundEpochs; epoch++) {
      for (const { row, item } of pairs) {
        if (m !== this.holder.model || this.closed) return; // swapped or closing: the next version replays the log
        const j = this.negative(m, row);
        const ub = row * d;
        const ib = item * d;
        const jb = j * d;
        let x = 0;
        for (let c = 0; c < d; c++) x += U[ub + c] * (I[ib + c] - I[jb + c]);
        const g = 1 - sigmoid(x);
        for (let c = 0; c < d; c++) grad[c] = g * U[ub + c];
        for (let c = 0; c < d; c++) U[ub + c] += lr * (g * (I[ib + c] - I[jb + c]) - reg * U[ub + c]);
        let si = 0;
        let sj = 0;
        for (let c = 0; c < d; c++) {
          const di = lr * (grad[c] - reg * I[ib + c]);
          const dj = lr * (-grad[c] - reg * I[jb + c]);
          I[ib + c] += di;
          I[jb + c] += dj;
          si += di * di;
          sj += dj * dj;
        }
        moved[item] += Math.sqrt(si);
        moved[j] += Math.sqrt(sj);
        if (++n % 500 === 0) {
          await new Promise((r) => setImmediate(r)); // let requests through
          U = m.userVectors;
        }
      }
    }
    const tSgd = performance.now();
    let touched = 0;
    const changed: number[] = [];
    for (let it = 0; it < m.nItems; it++) {
      if (moved[it] === 0) continue;
      touched++;
      let n2 = 0;
      for (let c = 0; c < d; c++) n2 += I[it * d + c] ** 2;
      if (moved[it] >= this.cfg.reindexMove * Math.sqrt(n2)) changed.push(it);
    }
    // The ANN index: rebuilt off the event loop when much of the catalog moved, else the
    // changed items re-linked in place (hnswlib re-links an existing label), in chunks.
    const rebuilt = changed.length >= this.cfg.rebuildShare * m.nItems;
    if (rebuilt) {
      const index = await rebuildAnnIndex(I, m.nItems, d, m.manifest.hnsw, m.ef, this.closing.signal);
      if (m !== this.holder.model || this.closed) return; // retired meanwhile
      m.ann = index;
    } else {
      const row = new Array<number>(d);
      let k = 0;
      for (const it of changed) {
        if (m !== this.holder.model || this.closed) return; // retired meanwhile: its index is going away
        for (let c = 0; c < d; c++) row[c] = I[it * d + c];
        m.ann.addPoint(row, it);
        if (++k % 10 === 0) await new Promise((r) => setImmediate(r));
      }
    }
    const tAnn = performance.now();
    // The exact path: a new session over the new table, swapped in; the old one closes after its queue.
    if (m !== this.holder.model || this.closed) return;
    const next = await ExactScorer.open(buildScoringModel(I, m.nItems, d), d, m.nItems, [m.exact.provider], this.logger);
    if (m !== this.holder.model || this.closed) {
      await next.close(); // the version was retired (and its scorer closed) while this one opened
      return;
    }
    const old = m.exact;
    m.exact = next;
    m.cache.clear();
    m.candidates.clear();
    old.close().catch((err) => this.logger.warn({ err: (err as Error).message }, 'closing the previous ONNX session failed'));
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
