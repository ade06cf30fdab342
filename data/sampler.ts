/**
 * BPR triplets: an epoch is a random permutation of the train interactions, each
 * paired with a uniformly drawn item that is not in the user's train set.
 */
import { csrHas, type Csr } from '../core/csr.js';
import type { Rng } from '../core/rng.js';

export { csrHas };

export interface Triplets {
  users: Int32Array;
  pos: Int32Array;
  neg: Int32Array;
}

export class BprSampler {
  private readonly order: Int32Array;

  constructor(
    private readonly users: Int32Array,
    private readonly items: Int32Array,
    private readonly trainByUser: Csr,
    private readonly nItems: number,
    private readonly rng: Rng,
  ) {
    this.order = new Int32Array(users.length);
    for (let i = 0; i < users.length; i++) this.order[i] = i;
  }

  get size(): number {
    return this.users.length;
  }

  /** Shuffles the interactions for a new epoch. */
  shuffle(): void {
    this.rng.shuffle(this.order);
  }

  /** Triplets for positions [start, start + n) of the current permutation. */
  batch(start: number, n: number): Triplets {
    const end = Math.min(start + n, this.order.length);
    const b = end - start;
    const out: Triplets = { users: new Int32Array(b), pos: new Int32Array(b), neg: new Int32Array(b) };
    for (let k = 0; k < b; k++) {
      const idx = this.order[start + k];
      const u = this.users[idx];
      out.users[k] = u;
      out.pos[k] = this.items[idx];
      out.neg[k] = this.negative(u);
    }
    return out;
  }

  /** A uniform item outside u's train set (gives up after many tries on a user who has nearly all items). */
  negative(u: number): number {
    let j = this.rng.int(this.nItems);
    for (let tries = 0; tries < 1000 && csrHas(this.trainByUser, u, j); tries++) j = this.rng.int(this.nItems);
    return j;
  }
}
