/**
 * A served version's HNSW index: hnswlib's on the event loop, plus its copies on the search
 * threads (search-threads.ts). Every mutation goes through here, so that each copy takes it
 * right after the event loop's did, in the same order; searches go to a thread when there is
 * one (searchUnseen), else run here.
 */
import { loadHnswIndex, rowArray, type HnswIndex } from '../../repository/hnsw-index.js';
import type { Logger } from 'pino';
import type { SearchThreads } from './search-threads.js';
import { searchUnseen } from './unseen-search.js';

export class AnnIndex {
  private constructor(
    /** The event loop's copy (synchronous searches: the fall-backs, neighbors, tests). */
    readonly local: HnswIndex,
    readonly threads: SearchThreads | null,
    /** This index's id on the threads (0: not on them). */
    private readonly id: number,
  ) {}

  /**
   * Opens `file` here and, when there are threads, on each of them (the file must stay until
   * this resolves); a thread that cannot load it leaves the index searched here.
   */
  static async open(file: string, dim: number, ef: number, threads: SearchThreads | null = null, log?: Logger): Promise<AnnIndex> {
    const onThreads = threads?.size
      ? threads.load(file, dim, ef).catch((err: Error) => {
          log?.error({ err: err.message, file }, 'search threads could not load the index: it is searched on the event loop');
          return 0;
        })
      : Promise.resolve(0);
    const [local, id] = await Promise.allSettled([loadHnswIndex(file, dim, ef), onThreads]);
    const threadId = id.status === 'fulfilled' ? id.value : 0;
    if (local.status === 'rejected') {
      if (threadId) threads!.free(threadId);
      throw local.reason;
    }
    return new AnnIndex(local.value, threads, threadId);
  }

  /** Whether a search is answered by a thread. */
  get offThread(): boolean {
    return this.id > 0 && !!this.threads?.serves(this.id);
  }

  searchKnn(query: number[], k: number, filter?: (label: number) => boolean): { neighbors: number[]; distances: number[] } {
    return this.local.searchKnn(query, k, filter);
  }

  getCurrentCount(): number {
    return this.local.getCurrentCount();
  }

  getMaxElements(): number {
    return this.local.getMaxElements();
  }

  getIdsList(): number[] {
    return this.local.getIdsList();
  }

  addPoint(vector: number[], label: number): void {
    this.local.addPoint(vector, label);
    if (this.id) this.threads?.op(this.id, 'add', label, vector);
  }

  markDelete(label: number): void {
    this.local.markDelete(label);
    if (this.id) this.threads?.op(this.id, 'delete', label);
  }

  unmarkDelete(label: number): void {
    this.local.unmarkDelete(label);
    if (this.id) this.threads?.op(this.id, 'undelete', label);
  }

  resizeIndex(maxElements: number): void {
    this.local.resizeIndex(maxElements);
    if (this.id) this.threads?.op(this.id, 'resize', maxElements);
  }

  setEf(ef: number): void {
    this.local.setEf(ef);
    if (this.id) this.threads?.op(this.id, 'ef', ef);
  }

  /**
   * The top `c` rows not in `out` (unseen-search.ts): on a search thread when there is one
   * (`out` listing every left-out row), else on the event loop (`isOut` asked per row).
   */
  async searchUnseen(vector: Float32Array, c: number, first: number, want: number, out: () => Int32Array | undefined, isOut: (row: number) => boolean): Promise<Int32Array> {
    const rows = this.offThread ? out() : undefined;
    if (rows) {
      const found = await this.threads!.search(this.id, vector, c, first, want, rows);
      if (found) return found;
    }
    return searchUnseen(this.local, rowArray(vector, 0, vector.length, scratch), c, first, want, isOut);
  }

  /** The copies on the threads are dropped (the version retired, or the index replaced by a rebuilt one). */
  dispose(): void {
    if (this.id) this.threads?.free(this.id);
  }
}

const scratch: number[] = [];
