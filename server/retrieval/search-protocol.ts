/** The messages between the event loop (search-threads.ts) and a search thread (search-worker.ts). */

/** Messages to a search thread (search-worker.ts); `id` names an index. */
export type ToSearchThread =
  | { t: 'load'; id: number; file: string; dim: number; ef: number }
  | { t: 'free'; id: number }
  | { t: 'op'; id: number; op: 'add' | 'delete' | 'undelete' | 'resize' | 'ef'; label: number; vector?: Float32Array }
  | { t: 'search'; q: number; id: number; vector: Float32Array; c: number; first: number; want: number; out: Int32Array };

export type FromSearchThread = { t: 'loaded'; id: number } | { t: 'failed'; id: number; message: string } | { t: 'found'; q: number; rows: Int32Array | null; message?: string };
