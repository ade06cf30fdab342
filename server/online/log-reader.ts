/**
 * The interaction log after a position, read on a worker thread (a read-only open: checking and
 * parsing a segment takes seconds for a few hundred thousand records) and handed over in slices,
 * one event per slice, so the event loop serves requests between them. The next slice is asked
 * for before the current one is handed on, so reading and applying overlap.
 */
import { Worker } from 'node:worker_threads';
import type { LogEntry } from '../../repository/interaction-log.js';

/** Every record of the log in `dir` after position `after` up to `upTo` (durable when the read was asked for), in slices of at most `slice`; `signal` stops the worker. */
export async function* readLogSlices(dir: string, after: number, upTo: number, slice: number, signal?: AbortSignal): AsyncGenerator<LogEntry[]> {
  const worker = new Worker(new URL('./log-read-worker.js', import.meta.url), { workerData: { dir, after, upTo, slice } });
  // One listener for the worker's whole life (a message emitted while none listens would be lost).
  const arrived: LogEntry[][] = [];
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const kick = () => {
    wake?.();
    wake = null;
  };
  const onAbort = () => {
    failure ??= signal!.reason instanceof Error ? signal!.reason : new Error('log replay cancelled');
    kick();
  };
  worker.on('message', (s: LogEntry[]) => {
    arrived.push(s);
    kick();
  });
  worker.on('error', (err) => {
    failure ??= err;
    kick();
  });
  worker.on('exit', (code) => {
    failure ??= new Error(`log reader worker exited with code ${code}`);
    kick();
  });
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    worker.postMessage('next');
    for (;;) {
      while (!arrived.length && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      const s = arrived.shift()!;
      if (!s.length) return;
      worker.postMessage('next');
      yield s;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await worker.terminate();
  }
}
