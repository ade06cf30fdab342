/**
 * The teacher guard's plain student on a worker thread, so that it trains on the second core
 * while the teacher trains on the first (tfjs-wasm computes on one thread in Node, tfjs#3830).
 * The worker (plain-worker.ts) initialises its own tfjs backend, the same one as the main
 * thread's, and runs the same trainStudent as the guard would: the same seed gives the same
 * checkpoint. Its log records come back as messages and are written through the caller's logger
 * (with `thread: 'plain'`), so they reach the main thread whenever its event loop turns (the
 * training loop yields once an epoch). A failure in the worker rejects `result` with an error
 * naming the plain student; an exit without a result does too, so the guard never waits forever.
 */
import { Worker } from 'node:worker_threads';
import type { Dataset } from '../../data/dataset.js';
import type { Logger } from '../../core/log.js';
import type { BackendInfo } from '../engine/backend.js';
import type { StudentConfig, TrainResult } from './student.js';
import type { PlainJob, PlainMessage } from './plain-worker.js';

export interface PlainThread {
  /** the training result (and the worker's wall seconds) once the plain student is trained and its checkpoint written */
  result: Promise<TrainResult & { wallSeconds: number }>;
  /** stops the worker (the run failed elsewhere): `result` then rejects */
  stop(): Promise<void>;
}

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export function startPlainStudent(data: Dataset, config: StudentConfig, checkpointDir: string, backend: BackendInfo, log: Logger): PlainThread {
  const job: PlainJob = { data, config, checkpointDir, backend: backend.choice, logLevel: log.level };
  const worker = new Worker(new URL('./plain-worker.js', import.meta.url), { workerData: job });
  let settled = false;
  const result = new Promise<TrainResult & { wallSeconds: number }>((resolve, reject) => {
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      log.error({ checkpoint: checkpointDir, error: why }, 'teacher guard: the plain student (worker thread) failed');
      reject(new Error(`teacher guard: training the plain student on a worker thread failed: ${why}`));
    };
    worker.on('message', (m: PlainMessage) => {
      if (m.type === 'log') return relay(log, m.line);
      if (m.type === 'error') return fail(m.message);
      if (settled) return;
      settled = true;
      resolve({ ...m.result, wallSeconds: m.wallSeconds });
      void worker.terminate(); // its checkpoint is written; nothing of it is needed any more
    });
    worker.once('error', (err) => fail(err.message));
    worker.once('exit', (code) => fail(code === 0 ? 'the worker exited without a result' : `the worker exited with code ${code}`));
  });
  // the caller awaits it later; a rejection before then is logged above, not an unhandled one
  result.catch(() => {});
  return {
    result,
    stop: async () => {
      if (settled) return;
      await worker.terminate();
    },
  };
}

/** One of the worker's log records, written through the main thread's logger. */
function relay(log: Logger, line: string): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.info({ thread: 'plain', line: line.trimEnd() }, 'plain student (worker thread)');
    return;
  }
  const { level, time, msg, app, pid, hostname, ...fields } = rec;
  void time, app, pid, hostname; // the main logger sets its own
  const name = LEVELS[level as number] ?? 'info';
  log[name]({ thread: 'plain', ...fields }, typeof msg === 'string' ? msg : '');
}
