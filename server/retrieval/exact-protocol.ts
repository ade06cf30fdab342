/** The messages between the exact scorer (exact.ts, on the event loop) and its thread (exact-worker.ts). */

export type ToExactThread =
  /** Open the session on a serialized model.onnx (a bundle's). */
  | { t: 'open-model'; model: Uint8Array; providers: string[]; threads: number }
  /** A slice of the item table the thread builds its model from (sent in slices: the event loop copies a few MB at a time), each answered by 'got'. */
  | { t: 'table'; length: number; offset: number; values: Float32Array }
  /** Build model.onnx from the table received, then open the session on it. */
  | { t: 'open-table'; nItems: number; dim: number; providers: string[]; threads: number }
  /** Top k of items·user for each of the b users (row-major b×dim). */
  | { t: 'run'; q: number; users: Float32Array; b: number; k: number }
  | { t: 'close' };

export type FromExactThread =
  | { t: 'opened'; provider: string; skipped: string[] }
  | { t: 'failed'; message: string }
  /** A table slice received (the next is sent only then: at most one slice waits beside the thread's table). */
  | { t: 'got' }
  /** b×k rows and scores, each user's sorted by decreasing score (ties by lower row). */
  | { t: 'done'; q: number; rows: Int32Array; scores: Float32Array }
  | { t: 'error'; q: number; message: string }
  | { t: 'closed' };
