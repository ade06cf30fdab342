/**
 * Search threads: the ANN path's candidate searches (hnswlib's searchKnn is synchronous, ~0.1 ms
 * on Tiktok, ~0.5 ms on a million items, several times that for a heavy user's filtered search)
 * run on worker threads instead of the event loop, which meanwhile parses, answers from the
 * caches and applies interactions. Each thread holds its own copy of every served index
 * (memory: one more index per thread), loaded from the same file and kept in step by the same
 * mutations in the same order (AnnIndex forwards them), so its answers are the event loop's.
 * A thread that fails is stopped and its searches run on the event loop again.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { FromSearchThread, ToSearchThread } from './search-protocol.js';

interface Thread {
  worker: Worker;
  /** searches sent and not yet answered */
  pending: Map<number, (rows: Int32Array | null) => void>;
  loads: Map<number, { resolve: () => void; reject: (err: Error) => void }>;
}

/** A thread holds the process alive only while it owes an answer (an idle server's threads never keep a finished process running). */
function holdWhileBusy(th: Thread): void {
  if (th.pending.size + th.loads.size > 0) th.worker.ref();
  else th.worker.unref();
}

export class SearchThreads {
  private readonly threads: Thread[] = [];
  private nextThread = 0;
  private nextQuery = 0;
  private nextIndex = 0;
  /** Indexes whose copy failed on some thread (a mutation that threw there): searched on the event loop from then on. */
  private readonly failed = new Set<number>();
  private stopped = false;
  /** Searches a thread answered (the rest ran on the event loop). */
  answered = 0;

  private constructor(private readonly log?: Logger) {}

  /** n threads, or null for n = 0 (every search on the event loop). */
  static start(n: number, log?: Logger): SearchThreads | null {
    if (n <= 0) return null;
    const s = new SearchThreads(log);
    for (let i = 0; i < n; i++) s.threads.push(s.spawn());
    return s;
  }

  private spawn(): Thread {
    const worker = new Worker(new URL('./search-worker.js', import.meta.url));
    const th: Thread = { worker, pending: new Map(), loads: new Map() };
    worker.on('message', (m: FromSearchThread) => {
      if (m.t === 'found') {
        const done = th.pending.get(m.q);
        th.pending.delete(m.q);
        if (m.rows) this.answered++;
        holdWhileBusy(th);
        done?.(m.rows);
      } else if (m.t === 'loaded') {
        const load = th.loads.get(m.id);
        th.loads.delete(m.id);
        holdWhileBusy(th);
        load?.resolve();
      } else {
        const load = th.loads.get(m.id);
        th.loads.delete(m.id);
        holdWhileBusy(th);
        if (load) load.reject(new Error(m.message));
        else {
          this.failed.add(m.id);
          this.log?.error({ index: m.id, err: m.message }, 'search thread: its index copy failed a mutation; that index is searched on the event loop');
        }
      }
    });
    const fail = (err: Error) => {
      if (this.stopped) return;
      this.log?.error({ err: err.message }, 'search thread failed: its searches run on the event loop');
      this.drop(th, err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`search thread exited with code ${code}`)));
    holdWhileBusy(th); // (after the listeners: adding a 'message' one refs the port again)
    return th;
  }

  /** A thread gone: its waiting searches get null (the caller searches on the event loop), it takes no more. */
  private drop(th: Thread, err: Error): void {
    const i = this.threads.indexOf(th);
    if (i < 0) return;
    this.threads.splice(i, 1);
    for (const done of th.pending.values()) done(null);
    th.pending.clear();
    for (const l of th.loads.values()) l.reject(err);
    th.loads.clear();
    void th.worker.terminate();
  }

  get size(): number {
    return this.threads.length;
  }

  /**
   * Loads the index file on every thread; resolves with its id once all have it. If any thread
   * cannot, the others' copies are freed and it rejects (only once every thread is done with
   * the file, which the caller may then delete).
   */
  async load(file: string, dim: number, ef: number): Promise<number> {
    const id = ++this.nextIndex;
    const loads = await Promise.allSettled(
      this.threads.map(
        (th) =>
          new Promise<void>((resolve, reject) => {
            th.loads.set(id, { resolve, reject });
            holdWhileBusy(th);
            th.worker.postMessage({ t: 'load', id, file, dim, ef } satisfies ToSearchThread);
          }),
      ),
    );
    const failed = loads.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failed) {
      this.free(id);
      throw failed.reason;
    }
    return id;
  }

  /** Whether searches of index `id` can run on a thread. */
  serves(id: number): boolean {
    return this.threads.length > 0 && !this.failed.has(id);
  }

  /** A mutation of index `id`, sent to every thread after the event loop's copy took it. */
  op(id: number, op: 'add' | 'delete' | 'undelete' | 'resize' | 'ef', label: number, vector?: ArrayLike<number>): void {
    const msg: ToSearchThread = { t: 'op', id, op, label, vector: vector && Float32Array.from(vector) };
    for (const th of this.threads) th.worker.postMessage(msg);
  }

  free(id: number): void {
    this.failed.delete(id);
    for (const th of this.threads) th.worker.postMessage({ t: 'free', id } satisfies ToSearchThread);
  }

  /** searchUnseen (unseen-search.ts) on a thread; null when no thread could answer it (search on the event loop then). */
  search(id: number, vector: Float32Array, c: number, first: number, want: number, out: Int32Array): Promise<Int32Array | null> {
    if (!this.serves(id)) return Promise.resolve(null);
    const th = this.threads[this.nextThread++ % this.threads.length];
    const q = ++this.nextQuery;
    return new Promise((resolve) => {
      th.pending.set(q, resolve);
      if (th.pending.size === 1) holdWhileBusy(th);
      th.worker.postMessage({ t: 'search', q, id, vector, c, first, want, out } satisfies ToSearchThread);
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
    const all = this.threads.splice(0);
    for (const th of all) {
      for (const done of th.pending.values()) done(null);
      for (const l of th.loads.values()) l.reject(new Error('search threads closed'));
    }
    await Promise.all(all.map((th) => th.worker.terminate()));
  }
}
