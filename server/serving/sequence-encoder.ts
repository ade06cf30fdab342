/**
 * A sequential version's user encoder: sequence.onnx on onnxruntime-node (execution providers
 * in the configured order, cuda then cpu, as the exact scorer). Concurrent requests are
 * micro-batched: while one run is in flight new sequences queue up and go together in the next,
 * in one run per width class, each left-padded with the padding row to its longest sequence (the
 * graph's positions are right-aligned, so the width does not change a vector).
 */
import ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { MicroBatcher } from '../retrieval/micro-batcher.js';
import { openOnnxSession } from '../retrieval/onnx-session.js';

interface Pending {
  items: Int32Array;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

/** Sequences per ONNX run, at most (the exact scorer's batch bound too). */
export const MAX_ENCODER_BATCH = 256;

export class SequenceEncoder {
  private readonly batcher = new MicroBatcher<Pending>(MAX_ENCODER_BATCH, (batch) => this.runBatch(batch));

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: string,
    readonly dim: number,
    /** The padding row (= the catalog size). */
    readonly padRow: number,
    readonly maxLen: number,
  ) {}

  static async open(model: Uint8Array, dim: number, nItems: number, maxLen: number, providers: string[], log?: Logger, threads?: number): Promise<SequenceEncoder> {
    const { session, provider } = await openOnnxSession(model, 'sequence.onnx', providers, log, threads);
    return new SequenceEncoder(session, provider, dim, nItems, maxLen);
  }

  /** The user vector of a non-empty sequence of item rows (oldest first; only the last maxLen count). */
  encode(items: Int32Array): Promise<Float32Array> {
    if (this.batcher.closed) return Promise.reject(new Error('sequence encoder is closed'));
    if (items.length === 0) return Promise.reject(new RangeError('an empty sequence has no vector'));
    return new Promise((resolve, reject) => {
      this.batcher.add({ items, resolve, reject });
    });
  }

  /** One ONNX run over the given sequences (each non-empty): [n × dim]. The micro-batcher's step, and the benchmark's. */
  async encodeMany(seqs: readonly Int32Array[]): Promise<Float32Array> {
    const b = seqs.length;
    const width = Math.min(this.maxLen, seqs.reduce((m, s) => Math.max(m, s.length), 1));
    const rows = new BigInt64Array(b * width).fill(BigInt(this.padRow));
    seqs.forEach((s, i) => {
      const tail = s.length > width ? s.subarray(s.length - width) : s;
      const at = i * width + width - tail.length;
      for (let j = 0; j < tail.length; j++) rows[at + j] = BigInt(tail[j]);
    });
    const out = await this.session.run({ items: new ort.Tensor('int64', rows, [b, width]) });
    return out.user.data as Float32Array;
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const d = this.dim;
    // Padded to a long sequence's width, a short one would cost that width's work (most sequences
    // are short): one run per width class (1, 2, 3–4, 5–8, …), so a row is at most about twice its length.
    const groups = new Map<number, Pending[]>();
    for (const p of batch) {
      const c = Math.ceil(Math.log2(Math.min(p.items.length, this.maxLen)));
      const g = groups.get(c);
      if (g) g.push(p);
      else groups.set(c, [p]);
    }
    for (const g of groups.values()) {
      try {
        const users = await this.encodeMany(g.map((p) => p.items));
        g.forEach((p, i) => p.resolve(users.slice(i * d, (i + 1) * d)));
      } catch (err) {
        for (const p of g) p.reject(err as Error);
      }
    }
  }

  async close(): Promise<void> {
    // Let queued work finish on this session before releasing it.
    await this.batcher.close();
    await this.session.release();
  }
}
