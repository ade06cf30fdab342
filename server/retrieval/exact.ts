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
import { topK } from '../../core/topk.js';
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
  /** Rows of the scorer's table whose vectors changed since it was copied (PUT /items of an added item): scored from the item table. */
  staleTableRows?(): number[];
}

export const exactRetriever: Retriever<ExactSource> = {
  name: 'exact',
  async retrieve(source, q) {
    const { need } = wanted(source, q);
    // Rows the table holds with an old vector: every one is a candidate, and the table is asked for as many more.
    const stale = source.staleTableRows?.() ?? [];
    const table = (await source.exact.topK(q.vector, need + stale.length)).rows;
    // Items added since the ONNX table was built (PUT /items; a round's refresh folds them in): scored here.
    let rows: ArrayLike<number> = table;
    if (source.nItems > source.exact.nItems || stale.length) {
      const staleSet = new Set(stale);
      rows = [...Array.from(table).filter((r) => !staleSet.has(r)), ...stale, ...(source.nItems > source.exact.nItems ? addedTopK(source, q.vector, need) : [])];
    }
    return { items: rank(source, q.vector, unseen(rows, q.seen), q.k), retrieval: 'exact' };
  },
};

/** The top `k` of the rows past the exact scorer's table, by the student's score (their union with the table's top k holds the overall top k). */
function addedTopK(source: ExactSource, vector: Float32Array, k: number): Int32Array {
  const from = source.exact.nItems;
  const n = source.nItems - from;
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) scores[i] = source.score(vector, from + i);
  const out = new Int32Array(Math.min(k, n));
  const got = topK(scores, 0, n, out.length, out);
  for (let i = 0; i < got; i++) out[i] += from;
  return out.subarray(0, got);
}
