/**
 * Finds new versions in the model repository (watching the model folder, polling as a
 * fall-back, or on POST /admin/reload), loads and verifies them off the request path and swaps
 * them in. A version that fails is logged, counted and remembered (not retried until it is
 * asked for explicitly), and the version being served keeps serving.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
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

export class Reloader {
  private failed = new Map<number, string>();
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
  ) {}

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

  private async run(force: boolean): Promise<ReloadResult> {
    if (force) this.failed.clear();
    const current = this.holder.model?.version ?? 0;
    const candidates = listVersions(this.repo, this.name).filter((v) => v > current && !this.failed.has(v)).reverse();
    const refused: ReloadResult['refused'] = [];
    for (const v of candidates) {
      const t0 = performance.now();
      try {
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
        this.log.info({ model: this.name, version: v, previous: current || null, items: m.nItems, users: m.nUsers, provider: m.exact.provider, ms: Math.round(performance.now() - t0) }, 'model version loaded');
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
