/**
 * The users a served version learned online (not in its bundle), capped: past the cap the one
 * updated least recently is forgotten. Its interactions stay in the durable log, so the nightly
 * retrain still absorbs them; until then its next request is a cold start, and its next
 * interaction starts it afresh from that item's vector.
 */
import type { ServingModel } from '../serving/serving-model.js';

export class OnlineUsers {
  /** row → id, least recently updated first (a Map keeps insertion order; an update re-inserts). */
  private readonly lru = new Map<number, string>();
  evictions = 0;

  /** `cap` online-only users at most (0 = no cap); `onEvict` counts each eviction. */
  constructor(
    private readonly m: ServingModel,
    private readonly cap: number,
    private readonly onEvict?: () => void,
  ) {}

  get size(): number {
    return this.lru.size;
  }

  /** The user's row, created from `vector` (evicting first if full) when the user is unknown; marks it most recently updated. */
  rowFor(id: string, vector: () => Float32Array): { row: number; created: boolean } {
    const known = this.m.userIndex.get(id);
    if (known !== undefined) {
      if (known >= this.m.bundleUsers) this.touch(known, id);
      return { row: known, created: false };
    }
    if (this.cap > 0) while (this.lru.size >= this.cap) this.evictOldest();
    const row = this.m.addUser(id, vector());
    this.lru.set(row, id);
    return { row, created: true };
  }

  private touch(row: number, id: string): void {
    this.lru.delete(row);
    this.lru.set(row, id);
  }

  private evictOldest(): void {
    const [row, id] = this.lru.entries().next().value as [number, string];
    this.lru.delete(row);
    this.m.removeUser(id);
    this.evictions++;
    this.onEvict?.();
  }

  /** The online-only users, least recently updated first: [row, id]. */
  entries(): IterableIterator<[number, string]> {
    return this.lru.entries();
  }
}
