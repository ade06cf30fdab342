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
  /** Bumped by clear() and per row by dropUser(): candidates searched across a bump are not kept. */
  private epoch = 0;
  private rowEpochs = new Map<number, number>();

  constructor(readonly maxUsers: number) {}

  /**
   * Searches in flight per row (on a search thread they take a round trip): the requests of a
   * user that arrive meanwhile (a heavy user's, right after its interaction) wait for that
   * search instead of each starting its own.
   */
  private flying = new Map<number, { stamp: string; c: number; rows: Promise<Int32Array> }>();

  /** The row's search in flight for `c` candidates under `stamp`, if any. */
  inFlight(row: number, c: number, stamp: string): Promise<Int32Array> | undefined {
    const f = this.flying.get(row);
    return f && f.stamp === stamp && f.c === c ? f.rows : undefined;
  }

  /** Registers a search; it leaves the map when it settles. */
  fly(row: number, c: number, stamp: string, rows: Promise<Int32Array>): void {
    // (A stale stamp: its rows will not be kept, and must not displace a newer flight.)
    if (this.maxUsers === 0 || stamp !== this.stamp(row)) return;
    const f = { stamp, c, rows };
    this.flying.set(row, f);
    const land = () => {
      if (this.flying.get(row) === f) this.flying.delete(row);
    };
    rows.then(land, land);
  }

  /** Taken before a search (which may run on a search thread); set() ignores its rows if the stamp changed meanwhile. */
  stamp(row: number): string {
    return `${this.epoch}:${this.rowEpochs.get(row) ?? 0}`;
  }

  get(row: number): Int32Array | undefined {
    const e = this.rows.get(row);
    if (!e) return undefined;
    this.rows.delete(row);
    this.rows.set(row, e);
    return e;
  }

  set(row: number, items: Int32Array, stamp?: string): void {
    if (this.maxUsers === 0 || (stamp !== undefined && stamp !== this.stamp(row))) return;
    if (!this.rows.has(row) && this.rows.size >= this.maxUsers) this.rows.delete(this.rows.keys().next().value as number);
    this.rows.set(row, items);
  }

  /** The user's vector moved (online learning): its candidates were searched for the old one. */
  dropUser(row: number): void {
    this.rows.delete(row);
    if (this.maxUsers === 0) return;
    this.rowEpochs.set(row, (this.rowEpochs.get(row) ?? 0) + 1);
    // Old per-row stamps only matter for searches in flight: bound the map.
    if (this.rowEpochs.size > 4 * this.maxUsers) {
      this.rowEpochs.clear();
      this.epoch++;
    }
  }

  clear(): void {
    this.rows.clear();
    this.rowEpochs.clear();
    this.epoch++;
  }
}
