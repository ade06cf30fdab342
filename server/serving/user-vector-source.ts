/**
 * Where a served user's vector comes from, one seam for both kinds of bundle: a copy of its row
 * of the user table (LightGCN: online learning moves the table), or the encoder run on its live
 * sequence (a sequential bundle: each interaction appends to the sequence). null: no vector (the
 * answer is the popularity ranking).
 */
import type { SequenceEncoder } from './sequence-encoder.js';
import type { UserSequences } from './user-sequences.js';

export interface UserVectorSource {
  /** The caller's own vector (never written to by online learning), or a promise of it. */
  vectorOf(row: number): Float32Array | null | Promise<Float32Array | null>;
}

export function tableVectors(table: { userVector(row: number): Float32Array }): UserVectorSource {
  // A copy: online learning may move the user's vector (or grow the table) while the answer is computed.
  return { vectorOf: (row) => table.userVector(row).slice() };
}

export function sequenceVectors(sequences: UserSequences, encoder: SequenceEncoder): UserVectorSource {
  return {
    vectorOf(row) {
      const s = sequences.of(row);
      return s.length === 0 ? null : encoder.encode(s);
    },
  };
}
