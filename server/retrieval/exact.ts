/**
 * The exact retrieval path: top-k through the bundle's model.onnx on onnxruntime-node. Execution
 * providers are tried in the configured order (default cuda, then cpu); the one that opened the
 * session is reported. Concurrent requests are micro-batched: while one ONNX run is in flight,
 * new queries queue up and go together in the next run (one Gemm over the item table for the whole batch).
 */
import ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { MicroBatcher } from './micro-batcher.js';
import { DEFAULTS } from '../../core/defaults.js';
import { openOnnxSession } from './onnx-session.js';
import { rank, unseen, wanted, type ItemTable, type Retriever } from './retriever.js';

export interface TopK {
  rows: Int32Array;
  scores: Float32Array;
}

interface Pending {
  vector: Float32Array;
  k: number;
  resolve: (r: TopK) => void;
  reject: (e: Error) => void;
}

export const MAX_EXACT_BATCH = 256;

export class ExactScorer {
  private readonly batcher = new MicroBatcher<Pending>(MAX_EXACT_BATCH, (batch) => this.runBatch(batch));

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: string,
    readonly dim: number,
    readonly nItems: number,
    /** Threads of a run (0 = ONNX Runtime's default); a refreshed scorer takes the same. */
    readonly threads: number,
    private readonly onBatch?: (users: number) => void,
  ) {}

  static async open(model: Uint8Array, dim: number, nItems: number, providers: string[], log?: Logger, onBatch?: (users: number) => void, threads: number = DEFAULTS.onnxThreads): Promise<ExactScorer> {
    const { session, provider } = await openOnnxSession(model, 'model.onnx', providers, log, threads);
    return new ExactScorer(session, provider, dim, nItems, threads, onBatch);
  }

  /** Top k rows of items·vector, ties by lower row; k is capped at the catalog size. */
  topK(vector: Float32Array, k: number): Promise<TopK> {
    if (this.batcher.closed) return Promise.reject(new Error('exact scorer is closed'));
    return new Promise((resolve, reject) => {
      this.batcher.add({ vector, k: Math.min(k, this.nItems), resolve, reject });
    });
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const b = batch.length;
    const d = this.dim;
    const k = batch.reduce((m, p) => Math.max(m, p.k), 1);
    const users = new Float32Array(b * d);
    batch.forEach((p, i) => users.set(p.vector, i * d));
    this.onBatch?.(b);
    try {
      const out = await this.session.run({
        users: new ort.Tensor('float32', users, [b, d]),
        k: new ort.Tensor('int64', BigInt64Array.from([BigInt(k)]), [1]),
      });
      const scores = out.scores.data as Float32Array;
      const rows = out.items.data as BigInt64Array;
      batch.forEach((p, i) => {
        const r = new Int32Array(p.k);
        for (let j = 0; j < p.k; j++) r[j] = Number(rows[i * k + j]);
        p.resolve({ rows: r, scores: scores.slice(i * k, i * k + p.k) });
      });
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
    }
  }

  async close(): Promise<void> {
    // Let queued work finish on this session before releasing it.
    await this.batcher.close();
    await this.session.release();
  }
}

/** What the exact path reads of a served version: its item table and its scorer (replaced after a fine-tuning round). */
export interface ExactSource extends ItemTable {
  readonly exact: ExactScorer;
}

export const exactRetriever: Retriever<ExactSource> = {
  name: 'exact',
  async retrieve(source, q) {
    const { need } = wanted(source, q);
    const rows = unseen((await source.exact.topK(q.vector, need)).rows, q.seen);
    return { items: rank(source, q.vector, rows, q.k), retrieval: 'exact' };
  },
};
