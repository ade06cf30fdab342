/**
 * Each user's interactions as an ordered sequence (the input of a sequential student): the items
 * of the splits up to one, in the time order the loader determined (Dataset.order), repeats kept.
 */
import type { Csr } from '../core/csr.js';
import type { Dataset, Interactions } from './dataset.js';

/** 0: train; 1: train + validation; 2: train + validation + test. */
export type SplitLevel = 0 | 1 | 2;

/**
 * Row u = user u's item rows of the splits `<= upTo`, oldest first (a `timestamp` column, stable,
 * else file order), repeats kept, not truncated. Unlike the Dataset's per-split CSRs, rows are not
 * sorted by item and not deduplicated.
 */
export function userSequences(data: Dataset, upTo: SplitLevel): Csr {
  const parts: Interactions[] = [data.train, data.val, data.test].slice(0, upTo + 1);
  const indptr = new Int32Array(data.nUsers + 1);
  for (const p of parts) for (let i = 0; i < p.users.length; i++) indptr[p.users[i] + 1]++;
  for (let u = 0; u < data.nUsers; u++) indptr[u + 1] += indptr[u];
  const n = indptr[data.nUsers];
  const indices = new Int32Array(n);
  const ranks = new Int32Array(n);
  const fill = indptr.slice(0, data.nUsers);
  for (const p of parts) {
    for (let i = 0; i < p.users.length; i++) {
      const k = fill[p.users[i]]++;
      indices[k] = p.items[i];
      ranks[k] = p.rank[i];
    }
  }
  // Sort each row by rank (ranks are distinct, so no stability question); rows are short.
  for (let u = 0; u < data.nUsers; u++) {
    const a = indptr[u];
    const b = indptr[u + 1];
    if (b - a < 2 || isSorted(ranks, a, b)) continue;
    const order = Array.from({ length: b - a }, (_, j) => a + j).sort((x, y) => ranks[x] - ranks[y]);
    const items = order.map((k) => indices[k]);
    const rs = order.map((k) => ranks[k]);
    indices.set(items, a);
    ranks.set(rs, a);
  }
  return { indptr, indices };
}

function isSorted(a: Int32Array, start: number, end: number): boolean {
  for (let i = start + 1; i < end; i++) if (a[i] < a[i - 1]) return false;
  return true;
}

/** The most recent `maxLen` entries of row u (sequences longer than a model's window are truncated to their end). */
export function lastItems(seq: Csr, u: number, maxLen: number): Int32Array {
  const b = seq.indptr[u + 1];
  return seq.indices.subarray(Math.max(seq.indptr[u], b - maxLen), b);
}

/** Training windows or encoder inputs: batch × width item rows, left-padded with the padding row. */
export interface SequenceBatch {
  inputs: Int32Array;
  /** the next item of each input position (the padding row where there is none) */
  targets: Int32Array;
  batch: number;
  width: number;
}

/**
 * Users' sequences left-padded with `pad` to the longest of them (at most maxLen, at least 1):
 * the encoder's input; the most recent item sits in the last column.
 */
export function padLeft(seq: Csr, users: ArrayLike<number>, maxLen: number, pad: number): { rows: Int32Array; width: number } {
  let width = 1;
  for (let r = 0; r < users.length; r++) width = Math.max(width, Math.min(maxLen, seq.indptr[users[r] + 1] - seq.indptr[users[r]]));
  const rows = new Int32Array(users.length * width).fill(pad);
  for (let r = 0; r < users.length; r++) {
    const s = lastItems(seq, users[r], width);
    rows.set(s, (r + 1) * width - s.length);
  }
  return { rows, width };
}

/**
 * Next-item training windows over the train split: every user with at least two train items
 * gives one window, input = its prefix without the last item, target at each position = the
 * item after it, both cut to the most recent maxLen positions (as the yardstick does). Batches
 * are trimmed to their longest window; shuffle() draws a new order from the rng.
 */
export class SequenceWindows {
  /** the users that give a window, in the current order */
  private readonly users: Int32Array;

  constructor(
    private readonly seq: Csr,
    private readonly maxLen: number,
    private readonly pad: number,
    private readonly rng: { int(n: number): number },
  ) {
    const us: number[] = [];
    for (let u = 0; u + 1 < seq.indptr.length; u++) if (seq.indptr[u + 1] - seq.indptr[u] >= 2) us.push(u);
    this.users = Int32Array.from(us);
  }

  get size(): number {
    return this.users.length;
  }

  /** Fisher–Yates over the users. */
  shuffle(): void {
    const a = this.users;
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }

  batch(start: number, n: number): SequenceBatch {
    const us = this.users.subarray(start, Math.min(start + n, this.users.length));
    let width = 1;
    for (const u of us) width = Math.max(width, Math.min(this.maxLen, this.seq.indptr[u + 1] - this.seq.indptr[u] - 1));
    const inputs = new Int32Array(us.length * width).fill(this.pad);
    const targets = new Int32Array(us.length * width).fill(this.pad);
    us.forEach((u, r) => {
      const s = lastItems(this.seq, u, Math.min(this.maxLen, this.seq.indptr[u + 1] - this.seq.indptr[u] - 1) + 1);
      const m = s.length - 1;
      inputs.set(s.subarray(0, m), (r + 1) * width - m);
      targets.set(s.subarray(1), (r + 1) * width - m);
    });
    return { inputs, targets, batch: us.length, width };
  }
}
