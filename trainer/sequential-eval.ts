/**
 * Evaluation of a sequential student: a user's input is its train items (validation) or train +
 * validation items (test), in time order, the most recent maxLen of them; its vector is the
 * encoder's last hidden state; then all-ranking over the catalog as for every model (trainer/eval.ts),
 * whose masks (train, + validation) are exactly the input's items, repeats included.
 */
import type { Dataset } from '../data/dataset.js';
import { padLeft, userSequences } from '../data/sequences.js';
import type { Csr } from '../core/csr.js';
import { evaluateWithUsers, type Metrics, type Split } from './eval.js';

/** What evaluation needs from a sequential encoder (SasRec offers it). */
export interface SequenceEncoder {
  readonly shape: { dim: number; maxLen: number; nItems: number };
  /** batch × width left-padded item rows (padding row nItems) → batch × dim, evaluation mode */
  encodeLast(rows: Int32Array, batch: number, width: number): Float32Array;
  /** [nItems, dim] */
  itemEmbeddings(): Float32Array;
}

/** The sequences a split's users are encoded from: train for validation, train + validation for test. */
export function splitInputs(data: Dataset, split: Split): Csr {
  return userSequences(data, split === 'val' ? 0 : 1);
}

/**
 * [nUsers, dim]: row u = the encoding of u's sequence in `seq` (zeros for an empty one: no
 * vector, as the server falls back to popularity). Users are batched by length so that a batch is
 * trimmed to little padding; positions are right-aligned, so that changes no vector.
 */
export function encodeUsers(enc: SequenceEncoder, seq: Csr, users: readonly number[], block = 256): Float32Array {
  const { dim, maxLen, nItems } = enc.shape;
  const nUsers = seq.indptr.length - 1;
  const out = new Float32Array(nUsers * dim);
  const len = (u: number) => seq.indptr[u + 1] - seq.indptr[u];
  const todo = users.filter((u) => len(u) > 0).sort((a, b) => len(a) - len(b) || a - b);
  for (let s = 0; s < todo.length; s += block) {
    const us = todo.slice(s, s + block);
    const { rows, width } = padLeft(seq, us, maxLen, nItems);
    const v = enc.encodeLast(rows, us.length, width);
    us.forEach((u, r) => out.set(v.subarray(r * dim, (r + 1) * dim), u * dim));
  }
  return out;
}

/** The user vectors of a split's inputs, for every user with an input, [nUsers, dim]. */
export function splitUserVectors(enc: SequenceEncoder, data: Dataset, split: Split): Float32Array {
  const all = Array.from({ length: data.nUsers }, (_, u) => u);
  return encodeUsers(enc, splitInputs(data, split), all);
}

export function evaluateSequential(enc: SequenceEncoder, data: Dataset, opts: { split: Split; ks?: number[] }): Metrics {
  return evaluateSequentialWithUsers(enc, data, opts).metrics;
}

/** The metrics, and with `opts.perUser` each evaluated user's value of that metric (the loop's plateau rule). */
export function evaluateSequentialWithUsers(enc: SequenceEncoder, data: Dataset, opts: { split: Split; ks?: number[]; perUser?: string }): { metrics: Metrics; perUser?: Float64Array } {
  const truth = opts.split === 'val' ? data.valByUser : data.testByUser;
  const users: number[] = [];
  for (let u = 0; u < data.nUsers; u++) if (truth.indptr[u + 1] > truth.indptr[u]) users.push(u);
  const vectors = encodeUsers(enc, splitInputs(data, opts.split), users);
  return evaluateWithUsers(vectors, enc.itemEmbeddings(), enc.shape.dim, data, { split: opts.split, ks: opts.ks, perUser: opts.perUser });
}
