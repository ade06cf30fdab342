/**
 * The ANN path's candidates per user row (a bounded LRU, kept on each served version): the HNSW
 * search returns the user's top ANN_CANDIDATES unseen items once; answers for any k up to that,
 * or after the result cache dropped the user's list, re-rank them exactly. They hold only for
 * the vector they were searched with: any move of it (online learning) drops them. Re-ranking
 * stale candidates instead was measured to lose recall fast (npm run bench:recall -- --users
 * 2000 --updates 8: Tiktok Recall@20 against exact 0.995, then 0.938 after one random
 * interaction per user, 0.686 after seven; now 0.990 after eight).
 */

/** Unseen items one ANN search asks for (at least k). */
export const ANN_CANDIDATES = 40;

export class CandidateCache {
  private rows = new Map<number, Int32Array>();

  constructor(readonly maxUsers: number) {}

  get(row: number): Int32Array | undefined {
    const e = this.rows.get(row);
    if (!e) return undefined;
    this.rows.delete(row);
    this.rows.set(row, e);
    return e;
  }

  set(row: number, items: Int32Array): void {
    if (this.maxUsers === 0) return;
    if (!this.rows.has(row) && this.rows.size >= this.maxUsers) this.rows.delete(this.rows.keys().next().value as number);
    this.rows.set(row, items);
  }

  /** The user's vector moved (online learning): its candidates were searched for the old one. */
  dropUser(row: number): void {
    this.rows.delete(row);
  }

  clear(): void {
    this.rows.clear();
  }
}
