/**
 * The exact retrieval path: top-k through the bundle's model.onnx on onnxruntime-node. Execution
 * providers are tried in the configured order (default cuda, then cpu); the one that opened the
 * session is reported. The session lives on its own thread (exact-worker.ts): a run holds the
 * thread that calls it, and at a million items a run takes tens of milliseconds and opening a
 * refreshed session most of a second, which the event loop spends on requests instead.
 * Concurrent requests are micro-batched: while one run is in flight, new queries queue up and
 * go together in the next run (one Gemm over the item table for the whole batch).
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { MicroBatcher } from './micro-batcher.js';
import { DEFAULTS } from '../../core/defaults.js';
import { fallBackMessage } from './onnx-session.js';
import { topK } from '../../core/topk.js';
import { rank, unseen, wanted, type ItemTable, type Retriever } from './retriever.js';
import type { FromExactThread, ToExactThread } from './exact-protocol.js';

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
/** Floats of the item table per message of a refresh (4 MiB: ~3 ms of copying on the event loop each, measured). */
const TABLE_SLICE = 1 << 20;

export class ExactScorer {
  private readonly batcher = new MicroBatcher<Pending>(MAX_EXACT_BATCH, (batch) => this.runBatch(batch));
  private readonly runs = new Map<number, { resolve: (m: Extract<FromExactThread, { t: 'done' }>) => void; reject: (e: Error) => void }>();
  private nextRun = 0;
  /** Why the thread is gone (every later run fails with it), or null while it serves. */
  private lost: Error | null = null;
  private onOpened: ((m: FromExactThread) => void) | null = null;
  private onGot: (() => void) | null = null;
  private onClosed: (() => void) | null = null;
  private closing: Promise<void> | null = null;

  private readonly worker = new Worker(new URL('./exact-worker.js', import.meta.url));

  private constructor(
    readonly dim: number,
    readonly nItems: number,
    /** Threads of a run (0 = ONNX Runtime's default); a refreshed scorer takes the same. */
    readonly threads: number,
    private readonly log?: Logger,
    /** Told each batch's size (the server's histogram); a refreshed scorer takes the same. */
    readonly onBatch?: (users: number) => void,
  ) {
    const worker = this.worker;
    worker.on('message', (m: FromExactThread) => {
      if (m.t === 'done' || m.t === 'error') {
        const r = this.runs.get(m.q);
        this.runs.delete(m.q);
        this.holdWhileBusy();
        if (m.t === 'done') r?.resolve(m);
        else r?.reject(new Error(`exact scorer: ${m.message}`));
      } else if (m.t === 'got') this.onGot?.();
      else if (m.t === 'closed') this.onClosed?.();
      else this.onOpened?.(m);
    });
    const gone = (err: Error) => {
      if (this.lost) return;
      this.lost = err;
      if (!this.closing && !this.onOpened) log?.error({ err: err.message }, 'exact scorer thread failed: exact answers are scored on the event loop until a new scorer opens');
      for (const r of this.runs.values()) r.reject(err);
      this.runs.clear();
      this.onOpened?.({ t: 'failed', message: err.message });
      this.onGot?.();
      this.onClosed?.();
      this.holdWhileBusy();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`the exact scorer thread exited with code ${code}`)));
  }

  /** The provider whose session serves (set once opened). */
  provider = '';

  /** The thread died while serving (not closed by us): its answers must come from elsewhere (exactRetriever scores the table itself). */
  get failed(): boolean {
    return this.lost !== null && this.closing === null;
  }

  /**
   * The session over a serialized model.onnx (a bundle's), on its own thread. A `model` that is
   * the whole of its buffer is handed over (transferred, not copied: 256 MB at a million items),
   * so the caller must not use it afterwards.
   */
  static open(model: Uint8Array, dim: number, nItems: number, providers: string[], log?: Logger, onBatch?: (users: number) => void, threads: number = DEFAULTS.onnxThreads): Promise<ExactScorer> {
    const s = new ExactScorer(dim, nItems, threads, log, onBatch);
    const whole = model.byteOffset === 0 && model.byteLength === model.buffer.byteLength && model.buffer instanceof ArrayBuffer;
    return s.opened(() => s.post({ t: 'open-model', model, providers, threads }, whole ? [model.buffer as ArrayBuffer] : []));
  }

  /**
   * The session over an item table (a fine-tuning round's refresh): the table goes to the thread in
   * slices, between which the event loop serves; the thread builds the model and opens it.
   * The table must not change until this resolves except in rows the caller tracks as stale.
   */
  static fromTable(table: Float32Array, nItems: number, dim: number, providers: string[], log?: Logger, onBatch?: (users: number) => void, threads: number = DEFAULTS.onnxThreads): Promise<ExactScorer> {
    const s = new ExactScorer(dim, nItems, threads, log, onBatch);
    return s.opened(async () => {
      for (let off = 0; off < table.length || off === 0; off += TABLE_SLICE) {
        // (a copy, transferred: posting a view would clone its whole buffer)
        const values = table.slice(off, Math.min(table.length, off + TABLE_SLICE));
        // the next slice once this one is in (the event loop serves meanwhile; at most one slice waits)
        const got = new Promise<void>((resolve) => (s.onGot = resolve));
        s.post({ t: 'table', length: table.length, offset: off, values }, [values.buffer]);
        await got;
        if (s.lost) return;
      }
      s.onGot = null;
      s.post({ t: 'open-table', nItems, dim, providers, threads });
    });
  }

  private post(m: ToExactThread, transfer: ArrayBuffer[] = []): void {
    if (!this.lost) this.worker.postMessage(m, transfer);
  }

  /** Sends what opens the session, waits for the thread's answer; the thread is stopped if it cannot open. */
  private async opened(send: () => void | Promise<void>): Promise<ExactScorer> {
    this.worker.ref();
    const answer = new Promise<FromExactThread>((resolve) => (this.onOpened = resolve));
    await send();
    const m = await answer;
    this.onOpened = null;
    if (m.t !== 'opened') {
      this.lost ??= new Error(m.t === 'failed' ? m.message : 'exact scorer: no session');
      await this.worker.terminate();
      throw this.lost;
    }
    if (m.skipped.length) this.log?.warn({ provider: m.provider, skipped: m.skipped, file: 'model.onnx' }, fallBackMessage(m.provider));
    this.provider = m.provider;
    this.holdWhileBusy();
    return this;
  }

  /** The thread holds the process alive only while it owes an answer (an idle server never keeps a finished process running). */
  private holdWhileBusy(): void {
    if (this.runs.size > 0 && !this.lost) this.worker.ref();
    else this.worker.unref();
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
      if (this.lost) throw this.lost;
      const q = ++this.nextRun;
      const out = await new Promise<Extract<FromExactThread, { t: 'done' }>>((resolve, reject) => {
        this.runs.set(q, { resolve, reject });
        this.holdWhileBusy();
        this.post({ t: 'run', q, users, b, k }, [users.buffer]);
      });
      batch.forEach((p, i) => p.resolve({ rows: out.rows.slice(i * k, i * k + p.k), scores: out.scores.slice(i * k, i * k + p.k) }));
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
    }
  }

  /** Once: a second call waits for the first. */
  close(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    // Let queued work finish on this session before releasing it.
    await this.batcher.close();
    if (!this.lost) {
      this.worker.ref();
      await new Promise<void>((resolve) => {
        this.onClosed = resolve;
        this.post({ t: 'close' });
      });
    }
    this.lost ??= new Error('exact scorer is closed');
    await this.worker.terminate();
  }
}

/** What the exact path reads of a served version: its item table and its scorer (replaced after a fine-tuning round). */
export interface ExactSource extends ItemTable {
  readonly exact: ExactScorer;
  /** Rows of the scorer's table whose vectors changed since it was copied (PUT /items of an added item): scored from the item table. */
  staleTableRows?(): number[];
  /** The scorer's thread died: open a new one over the item table (once at a time; the answers meanwhile are scored here). */
  renewExact?(): void;
}

export const exactRetriever: Retriever<ExactSource> = {
  name: 'exact',
  async retrieve(source, q) {
    const { need } = wanted(source, q);
    // (one scorer for the whole answer: a refresh may swap it while this one runs)
    const exact = source.exact;
    if (exact.failed) {
      // Its thread died: the whole table scored here (correct, slower) until a new scorer serves.
      source.renewExact?.();
      return { items: rank(source, q.vector, unseen(rowsTopK(source, q.vector, 0, need), q.seen), q.k), retrieval: 'exact' };
    }
    // Rows the table holds with an old vector: every one is a candidate, and the table is asked for as many more.
    const stale = source.staleTableRows?.() ?? [];
    const table = (await exact.topK(q.vector, need + stale.length)).rows;
    // Items added since the ONNX table was built (PUT /items; a round's refresh folds them in): scored here.
    let rows: ArrayLike<number> = table;
    if (source.nItems > exact.nItems || stale.length) {
      const staleSet = new Set(stale);
      rows = [...Array.from(table).filter((r) => !staleSet.has(r)), ...stale, ...(source.nItems > exact.nItems ? rowsTopK(source, q.vector, exact.nItems, need) : [])];
    }
    return { items: rank(source, q.vector, unseen(rows, q.seen), q.k), retrieval: 'exact' };
  },
};

/** The top `k` of the rows from `from` on, by the student's score (past the scorer's table: their union with the table's top k holds the overall top k). */
function rowsTopK(source: ExactSource, vector: Float32Array, from: number, k: number): Int32Array {
  const n = source.nItems - from;
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) scores[i] = source.score(vector, from + i);
  const out = new Int32Array(Math.min(k, n));
  const got = topK(scores, 0, n, out.length, out);
  for (let i = 0; i < got; i++) out[i] += from;
  return out.subarray(0, got);
}
