/**
 * Finds new versions in the model repository (watching the model folder, polling as a
 * fall-back, or on POST /admin/reload), loads and verifies them off the request path and swaps
 * them in. A version that fails is logged, counted and remembered (not retried until it is
 * asked for explicitly), and the version being served keeps serving.
 *
 * Pinning (issue 18, rollback without deleting anything): `pin(n)` loads version n (older or
 * newer than the one served) and serves it until `unpin()`; while a version is pinned the watch,
 * the poll and /admin/reload load nothing else. The pin is durable: `models/NAME/pinned.json`,
 * read when the server starts (a pinned version that is gone or refused is reported and the
 * server serves the newest, still pinned to nothing it can load: see `pinProblem`).
 */
import { existsSync, readFileSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, fsyncPath } from '../../core/atomic.js';
import type { Logger } from 'pino';
import { listVersions, modelDir, versionDir } from '../../repository/versions.js';
import type { ServerMetrics } from '../common/metrics.js';
import type { ModelHolder } from './model-holder.js';
import { loadServingModel, type LoadOptions, type ServingModel } from './serving-model.js';

export interface ReloadResult {
  changed: boolean;
  version: number | null;
  refused: { version: number; reason: string }[];
}

/** The pin's file in the model folder. */
export const PINNED_FILE = 'pinned.json';

/** An error of pin(): the HTTP status it answers with. */
export class PinError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export class Reloader {
  private failed = new Map<number, string>();
  /** The version served until unpin(), or null. */
  private pinnedVersion: number | null = null;
  /** Why the pinned version could not be loaded at start (it is gone or was refused), or null. */
  pinProblem: string | null = null;
  private pending: Promise<ReloadResult> | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;

  constructor(
    private readonly repo: string,
    private readonly name: string,
    private readonly holder: ModelHolder,
    private readonly load: LoadOptions,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
    /**
     * Brings a loaded version up to date before it is swapped in (online learning replays the log
     * into it), while the served version keeps serving; `signal` aborts it when the reloader
     * stops. It may resolve with a last step, run synchronously right before the swap (no await
     * between), for what must not fall between the two.
     */
    private readonly prepare?: (m: ServingModel, signal: AbortSignal) => Promise<(() => void) | void> | (() => void) | void,
  ) {
    const file = join(modelDir(repo, name), PINNED_FILE);
    if (existsSync(file)) {
      try {
        const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
        if (!Number.isSafeInteger(v) || (v as number) < 1) throw new Error(`"version" must be a positive integer, got ${JSON.stringify(v)}`);
        this.pinnedVersion = v as number;
      } catch (err) {
        this.log.error({ file, err: (err as Error).message }, 'pinned.json unreadable: ignored (no version pinned)');
      }
    }
    metrics.pinnedVersion.set(this.pinnedVersion ?? 0);
  }

  /** The version served now, or null. */
  get served(): number | null {
    return this.holder.model?.version ?? null;
  }

  /** The pinned version, or null. */
  get pinned(): number | null {
    return this.pinnedVersion;
  }

  private writePin(v: number | null): void {
    const dir = modelDir(this.repo, this.name);
    const file = join(dir, PINNED_FILE);
    if (v === null) {
      rmSync(file, { force: true });
      fsyncPath(dir);
    } else {
      writeFileAtomic(file, Buffer.from(JSON.stringify({ version: v, pinnedAt: new Date().toISOString() }) + '\n'));
    }
    this.pinnedVersion = v;
    this.metrics.pinnedVersion.set(v ?? 0);
  }

  /**
   * Serves version `v` until unpin(): loads it (checksums, checks, the log replayed into it) if it
   * is not the one served, then records the pin. A version that does not exist is a 404, one
   * that fails to load a 409 with the reason (nothing changes then).
   */
  async pin(v: number): Promise<ReloadResult> {
    await this.pending?.catch(() => undefined);
    const run = (async (): Promise<ReloadResult> => {
      if (!listVersions(this.repo, this.name).includes(v)) throw new PinError(404, `version ${v} of model ${this.name} does not exist`);
      if (this.holder.model?.version !== v) {
        try {
          await this.loadVersion(v);
        } catch (err) {
          throw new PinError(409, `version ${v} could not be loaded: ${(err as Error).message}`);
        }
      }
      this.writePin(v);
      this.pinProblem = null;
      this.log.info({ model: this.name, version: v }, 'model version pinned');
      return { changed: true, version: v, refused: [] };
    })();
    // Other reloads wait for the pin; they do not get its error (the caller of pin does).
    this.pending = run
      .catch((): ReloadResult => ({ changed: false, version: this.holder.model?.version ?? null, refused: [] }))
      .finally(() => {
        this.pending = null;
      });
    return run;
  }

  /** Ends the pin; the newest version newer than the one served is then loaded as usual. */
  async unpin(): Promise<ReloadResult & { unpinned: number | null }> {
    await this.pending?.catch(() => undefined);
    const was = this.pinnedVersion;
    this.writePin(null);
    this.pinProblem = null;
    if (was !== null) this.log.info({ model: this.name, version: was }, 'model version unpinned');
    return { ...(await this.reload()), unpinned: was };
  }

  /** Aborts a version being prepared when the reloader stops (shutdown must not wait for a long replay). */
  private readonly stopping = new AbortController();

  /** Loads the newest version newer than the one served; with `force`, retries refused ones too. One reload at a time. */
  reload(force = false): Promise<ReloadResult> {
    if (!this.pending) {
      this.pending = this.run(force).finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  /** Loads, prepares and swaps in version v; throws (the served version untouched) when it fails. */
  private async loadVersion(v: number): Promise<void> {
    const t0 = performance.now();
    const current = this.holder.model?.version ?? 0;
    const m = await loadServingModel(versionDir(this.repo, this.name, v), this.load);
    try {
      const last = await this.prepare?.(m, this.stopping.signal);
      this.stopping.signal.throwIfAborted();
      last?.();
    } catch (err) {
      await m.close().catch(() => undefined);
      throw err;
    }
    this.holder.swap(m);
    this.metrics.loads.inc();
    this.metrics.modelVersion.reset();
    this.metrics.modelVersion.set({ model: this.name }, m.version);
    this.metrics.modelItems.set(m.nItems);
    this.metrics.modelUsers.set(m.nUsers);
    this.metrics.provider.reset();
    this.metrics.provider.set({ provider: m.exact.provider }, 1);
    this.log.info({ model: this.name, version: v, previous: current || null, items: m.nItems, users: m.nUsers, provider: m.exact.provider, pinned: this.pinnedVersion === v, ms: Math.round(performance.now() - t0) }, 'model version loaded');
  }

  private async run(force: boolean): Promise<ReloadResult> {
    if (force) this.failed.clear();
    const current = this.holder.model?.version ?? 0;
    const pin = this.pinnedVersion;
    // Pinned: only the pinned version may be loaded (at start, or after it was refused and retried with force).
    if (pin !== null && current === pin) return { changed: false, version: current, refused: [] };
    const newer = () => listVersions(this.repo, this.name).filter((v) => v > current && !this.failed.has(v)).reverse();
    let candidates = pin !== null ? (listVersions(this.repo, this.name).includes(pin) && !this.failed.has(pin) ? [pin] : []) : newer();
    if (pin !== null && !candidates.length) {
      if (!this.pinProblem) {
        this.pinProblem = this.failed.has(pin) ? `pinned version ${pin} was refused: ${this.failed.get(pin)}` : `pinned version ${pin} does not exist`;
        this.log.error({ model: this.name, pinned: pin, serving: current || null, problem: this.pinProblem }, 'the pinned version cannot be served: POST /admin/versions/unpin or pin another');
      }
      // Nothing served yet (a start): the newest loadable version rather than none; the pin stays recorded.
      if (current === 0) candidates = newer();
    }
    const refused: ReloadResult['refused'] = [];
    for (const v of candidates) {
      try {
        await this.loadVersion(v);
        return { changed: true, version: v, refused };
      } catch (err) {
        if (this.stopping.signal.aborted) {
          // Not the version's fault: it is tried again by the next start.
          this.log.info({ model: this.name, version: v }, 'loading a model version cancelled: the server is stopping');
          break;
        }
        const reason = (err as Error).message;
        this.failed.set(v, reason);
        refused.push({ version: v, reason });
        this.metrics.loadFailures.inc();
        this.log.error({ model: this.name, version: v, reason, serving: current || null }, 'model version refused');
      }
    }
    return { changed: false, version: this.holder.model?.version ?? null, refused };
  }

  /** Watch the model folder for new versions (debounced), with a slow poll in case events are missed. */
  start(pollSeconds: number): void {
    const dir = modelDir(this.repo, this.name);
    const kick = () => {
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload(), 200);
      this.debounce.unref();
    };
    if (existsSync(dir)) {
      try {
        this.watcher = watch(dir, kick);
        this.watcher.on('error', (err) => this.log.warn({ err: err.message }, 'watching the model folder failed; polling only'));
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot watch the model folder; polling only');
      }
    }
    if (pollSeconds > 0) {
      this.timer = setInterval(() => void this.reload(), pollSeconds * 1000);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error('the reloader stopped'));
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    await this.pending?.catch(() => undefined);
  }
}
