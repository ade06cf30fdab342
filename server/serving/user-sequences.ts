/**
 * A sequential version's live sequences: each user's last maxLen item rows, in order. They start
 * from the bundle's (train + validation at export) and grow with every interaction the online
 * learner applies (POST /interactions, and the log replayed into a version on start or swap).
 * A changed sequence is a new array (copy on write), so one read by a request in flight never
 * changes under it.
 */
const EMPTY = new Int32Array(0);

export class UserSequences {
  /** Sequences changed since the bundle (and those of users added online), by user row. */
  private readonly changed = new Map<number, Int32Array>();

  constructor(
    /** The bundle's CSR: offsets [users + 1], items. */
    private readonly offsets: Int32Array,
    private readonly items: Int32Array,
    readonly maxLen: number,
  ) {}

  /** The user's sequence, oldest first (empty for a user without history); not to be written to. */
  of(row: number): Int32Array {
    const c = this.changed.get(row);
    if (c) return c;
    return row + 1 < this.offsets.length ? this.items.subarray(this.offsets[row], this.offsets[row + 1]) : EMPTY;
  }

  /** Appends an item, dropping the oldest past maxLen. */
  append(row: number, item: number): void {
    const cur = this.of(row);
    const keep = Math.min(cur.length, this.maxLen - 1);
    const next = new Int32Array(keep + 1);
    next.set(cur.subarray(cur.length - keep));
    next[keep] = item;
    this.changed.set(row, next);
  }

  /** Forgets a user added online (its row will be reused by another). */
  drop(row: number): void {
    this.changed.delete(row);
  }
}
