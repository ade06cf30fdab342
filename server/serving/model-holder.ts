/**
 * Holds the version being served and swaps in a new one atomically: a request takes the
 * current version once (acquire) and keeps it to the end, so requests in flight finish on the
 * old version; the old one is released when its last request is done.
 */
import type { Logger } from 'pino';
import type { ServingModel } from './serving-model.js';

export class ModelHolder {
  private current: ServingModel | null = null;

  constructor(private readonly log?: Logger) {}

  get model(): ServingModel | null {
    return this.current;
  }

  acquire(): ServingModel | null {
    const m = this.current;
    if (m) m.inFlight++;
    return m;
  }

  release(m: ServingModel): void {
    m.inFlight--;
    if (m.inFlight === 0 && m !== this.current) this.retire(m);
  }

  swap(next: ServingModel): ServingModel | null {
    const old = this.current;
    this.current = next;
    if (old && old.inFlight === 0) this.retire(old);
    return old;
  }

  private retire(m: ServingModel): void {
    m.close().catch((err) => this.log?.warn({ err, version: m.version }, 'closing an old model version failed'));
  }

  async close(): Promise<void> {
    const m = this.current;
    this.current = null;
    if (m) await m.close();
  }
}
