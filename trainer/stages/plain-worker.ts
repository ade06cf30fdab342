/** Worker thread of plain-thread.ts: trains the teacher guard's plain student with its own tfjs backend. */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { initEngine, type BackendInfo } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import { trainStudent, type StudentConfig, type TrainResult } from './student.js';

/** What the main thread sends the worker. */
export interface PlainJob {
  data: Dataset;
  config: StudentConfig;
  checkpointDir: string;
  backend: BackendInfo['choice'];
  logLevel: string;
}

/** What the worker sends back: log records (pino's JSON lines), then its result or its error. */
export type PlainMessage = { type: 'log'; line: string } | { type: 'done'; result: TrainResult; wallSeconds: number } | { type: 'error'; message: string; stack?: string };

const job = workerData as PlainJob;
const post = (m: PlainMessage) => parentPort!.postMessage(m);
// every record goes to the main thread, which writes it through its own logger
const log = pino({ level: job.logLevel }, { write: (line: string) => post({ type: 'log', line }) });

try {
  const t0 = performance.now();
  const backend = await initEngine(job.backend);
  const result = await trainStudent(job.data, job.config, { checkpointDir: job.checkpointDir, backend, log, resume: false, progress: false });
  post({ type: 'done', result, wallSeconds: (performance.now() - t0) / 1000 });
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err));
  post({ type: 'error', message: e.message, stack: e.stack });
}
