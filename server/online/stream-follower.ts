/**
 * Follows a shared interaction log (a Redis stream several replicas write to): reads every entry
 * after the served version's applied position, in position order, and applies it through the
 * learner's immediate-update path — this replica's own writes included, so that every replica
 * applies the same entries in the same order. A write waits here until its entries are applied
 * (read-your-writes on the replica that took it).
 *
 * When the stream cannot be read the replica keeps answering from its last state, says so
 * (`degraded`, for /readyz and /metrics) and retries with backoff; once the connection is back
 * it catches up from where it stopped.
 */
import type { Logger } from 'pino';
import type { LogEntry } from '../../repository/interaction-log.js';
import type { RedisStreamLog } from '../../repository/redis-stream-log.js';
import type { ModelHolder } from '../serving/model-holder.js';
import type { ServingModel } from '../serving/serving-model.js';

export interface FollowerOptions {
  /** ms a read blocks waiting for new entries (also how soon stop() takes effect) */
  blockMs: number;
  /** entries read and applied per turn */
  slice: number;
  /** ms a write waits for its entries to be applied here before it is answered anyway (it is durable) */
  applyWaitMs: number;
}

export interface FollowedLearner {
  applyFollowed(m: ServingModel, entries: readonly LogEntry[]): Promise<void>;
}

const MAX_BACKOFF_MS = 2_000;
/** How often the stream's head and length are asked for (lag and length gauges). */
const HEAD_EVERY_MS = 1_000;

export class StreamFollower {
  /** The stream could not be read on the last try (answers come from the last state). */
  degraded = false;
  lastError: string | null = null;
  /** Newest position in the stream, as last asked (for the lag gauge). */
  head = 0;
  /** Entries in the stream, as last asked. */
  length = 0;
  readErrors = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private waiters: { position: number; resolve: () => void }[] = [];
  private headTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: RedisStreamLog,
    private readonly holder: ModelHolder,
    private readonly learner: FollowedLearner,
    private readonly opts: FollowerOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.loop ??= this.run();
    this.headTimer = setInterval(() => void this.refreshHead(), HEAD_EVERY_MS);
    this.headTimer.unref();
    void this.refreshHead();
  }

  /** Entries the served version lacks (0 when caught up with the last known head). */
  get lag(): number {
    const m = this.holder.model;
    return m ? Math.max(0, Math.max(this.head, this.log.position) - m.appliedPosition) : 0;
  }

  /** Resolves once the served version has applied `position` (or after applyWaitMs: the entry is durable anyway). */
  appliedThrough(position: number): Promise<void> {
    if ((this.holder.model?.appliedPosition ?? 0) >= position) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { position, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve();
      }, this.opts.applyWaitMs).unref();
    });
  }

  private wake(): void {
    const applied = this.holder.model?.appliedPosition ?? 0;
    if (!this.waiters.length) return;
    const rest: typeof this.waiters = [];
    for (const w of this.waiters) (w.position <= applied ? w.resolve() : rest.push(w));
    this.waiters = rest;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const m = this.holder.model;
      if (!m) {
        await sleep(50);
        continue;
      }
      try {
        const entries = await this.log.waitRead(m.appliedPosition, this.opts.blockMs, this.opts.slice);
        if (this.degraded) this.logger.info({ stream: this.log.address.stream, position: m.appliedPosition }, 'shared interaction log readable again: catching up');
        this.degraded = false;
        this.lastError = null;
        failures = 0;
        // A swap while the read waited: the new version reads from its own position next turn.
        if (entries.length && m === this.holder.model) {
          if (entries[0].position !== m.appliedPosition + 1) throw new Error(`the stream no longer holds positions ${m.appliedPosition + 1}–${entries[0].position - 1} (trimmed before version ${m.version} absorbed them)`);
          await this.learner.applyFollowed(m, entries);
        }
        this.wake();
      } catch (err) {
        if (this.stopped) break;
        this.readErrors++;
        failures++;
        if (!this.degraded) this.logger.warn({ stream: this.log.address.stream, err: (err as Error).message }, 'shared interaction log unreadable: serving the last state, retrying');
        this.degraded = true;
        this.lastError = (err as Error).message;
        await sleep(Math.min(MAX_BACKOFF_MS, 50 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private async refreshHead(): Promise<void> {
    try {
      [this.head, this.length] = await Promise.all([this.log.head(), this.log.length()]);
    } catch {
      // the read loop reports the outage
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.headTimer) clearInterval(this.headTimer);
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    this.log.interruptReads();
    await this.loop;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
