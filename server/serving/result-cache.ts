/**
 * A bounded LRU of recommendation lists per user, for the skewed traffic recommenders see (a
 * few users ask most often). Entries belong to one model version (the cache lives on it), a
 * user's entries are dropped when online learning changes that user, and all of them when a
 * fine-tuning round changes item vectors. Size 0 turns it off. Recency is kept the CLOCK way (a
 * hit only marks the user; eviction gives marked users a second chance): moving the user to
 * the back of the map on every hit (delete + set) was most of a hit's cost under load.
 */
import type { RetrievalName } from '../common/schemas.js';

/** A cached answer: the serialized response and what the metrics need. */
export interface CachedAnswer {
  json: string;
  retrieval: RetrievalName;
  coldStart: boolean;
}

interface UserEntries {
  answers: Map<string, CachedAnswer>;
  /** asked for since eviction last passed it */
  used: boolean;
}

export class ResultCache {
  private users = new Map<string, UserEntries>();
  /** Bumped by clear() and per user by dropUser(): an answer computed across a bump is not cached. */
  private epoch = 0;
  private userEpochs = new Map<string, number>();
  hits = 0;
  misses = 0;

  /** Taken before computing an answer; set() ignores the answer if the stamp changed meanwhile. */
  stamp(user: string): string {
    return `${this.epoch}:${this.userEpochs.get(user) ?? 0}`;
  }

  constructor(readonly maxUsers: number) {}

  get(user: string, key: string): CachedAnswer | undefined {
    if (this.maxUsers === 0) return undefined;
    const entries = this.users.get(user);
    const r = entries?.answers.get(key);
    if (r && entries) {
      entries.used = true;
      this.hits++;
    } else this.misses++;
    return r;
  }

  set(user: string, key: string, r: CachedAnswer, stamp: string): void {
    if (this.maxUsers === 0 || stamp !== this.stamp(user)) return;
    let entries = this.users.get(user);
    if (!entries) {
      if (this.users.size >= this.maxUsers) this.evictOne();
      this.users.set(user, (entries = { answers: new Map(), used: false }));
    }
    if (entries.answers.size >= 16) entries.answers.delete(entries.answers.keys().next().value as string);
    entries.answers.set(key, r);
  }

  /** The oldest user not asked for since eviction last passed it; the ones passed go to the back, unmarked. */
  private evictOne(): void {
    for (const [user, e] of this.users) {
      this.users.delete(user);
      if (!e.used) return;
      e.used = false;
      this.users.set(user, e);
    }
  }

  dropUser(user: string): void {
    this.users.delete(user);
    if (this.maxUsers === 0) return;
    this.userEpochs.set(user, (this.userEpochs.get(user) ?? 0) + 1);
    // Old per-user stamps only matter for answers in flight: bound the map.
    if (this.userEpochs.size > 4 * this.maxUsers) {
      this.userEpochs.clear();
      this.epoch++;
    }
  }

  clear(): void {
    this.users.clear();
    this.userEpochs.clear();
    this.epoch++;
  }
}
