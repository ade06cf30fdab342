/**
 * A search thread (search-threads.ts): its own copy of every served HNSW index, kept in step by
 * the mutations the event loop makes to its copy (sent in the same order, applied in order), and
 * the ANN path's candidate searches (unseen-search.ts) run against it off the event loop.
 */
import { parentPort } from 'node:worker_threads';
import { loadHnswIndex, rowArray, type HnswIndex } from '../../repository/hnsw-index.js';
import { searchUnseen } from './unseen-search.js';
import type { ToSearchThread } from './search-protocol.js';

const port = parentPort!;
const indexes = new Map<number, HnswIndex>();
const query: number[] = [];
/** Rows left out of the current search, one byte per label (set, searched, cleared). */
let out = new Uint8Array(0);

/** Ids freed while their copy was still loading: the copy is dropped when the load ends. */
const freedWhileLoading = new Set<number>();
const loadingIds = new Set<number>();

/**
 * Loads a copy. Not awaited by the message queue: the other indexes' searches go on meanwhile
 * (nothing refers to this id before the parent has every thread's 'loaded'; only a `free` can
 * arrive early, when the parent gave the index up).
 */
async function load(m: Extract<ToSearchThread, { t: 'load' }>): Promise<void> {
  loadingIds.add(m.id);
  try {
    const index = await loadHnswIndex(m.file, m.dim, m.ef);
    if (!freedWhileLoading.delete(m.id)) indexes.set(m.id, index);
    port.postMessage({ t: 'loaded', id: m.id });
  } catch (err) {
    freedWhileLoading.delete(m.id);
    port.postMessage({ t: 'failed', id: m.id, message: (err as Error).message });
  } finally {
    loadingIds.delete(m.id);
  }
}

function handle(m: ToSearchThread): void {
  switch (m.t) {
    case 'load':
      void load(m);
      return;
    case 'free':
      if (loadingIds.has(m.id)) freedWhileLoading.add(m.id);
      indexes.delete(m.id);
      return;
    case 'op': {
      const index = indexes.get(m.id);
      if (!index) return;
      try {
        if (m.op === 'add') index.addPoint(rowArray(m.vector!, 0, m.vector!.length, query), m.label);
        else if (m.op === 'delete') index.markDelete(m.label);
        else if (m.op === 'undelete') index.unmarkDelete(m.label);
        else if (m.op === 'resize') index.resizeIndex(m.label);
        else if (m.op === 'ef') index.setEf(m.label);
      } catch (err) {
        // This copy no longer matches the event loop's: the parent stops searching it.
        indexes.delete(m.id);
        port.postMessage({ t: 'failed', id: m.id, message: `${m.op} ${m.label}: ${(err as Error).message}` });
      }
      return;
    }
    case 'search': {
      const index = indexes.get(m.id);
      if (!index) return port.postMessage({ t: 'found', q: m.q, rows: null });
      let most = 0;
      for (let i = 0; i < m.out.length; i++) if (m.out[i] >= most) most = m.out[i] + 1;
      if (most > out.length) out = new Uint8Array(Math.max(most, 2 * out.length));
      for (let i = 0; i < m.out.length; i++) out[m.out[i]] = 1;
      try {
        const rows = searchUnseen(index, rowArray(m.vector, 0, m.vector.length, query), m.c, m.first, m.want, (row) => out[row] === 1);
        port.postMessage({ t: 'found', q: m.q, rows }, [rows.buffer as ArrayBuffer]);
      } catch (err) {
        port.postMessage({ t: 'found', q: m.q, rows: null, message: (err as Error).message });
      } finally {
        for (let i = 0; i < m.out.length; i++) out[m.out[i]] = 0;
      }
      return;
    }
  }
}

// In arrival order: a mutation or search is handled before the ones sent after it.
port.on('message', (m: ToSearchThread) => handle(m));
