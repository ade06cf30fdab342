/** Worker thread of log-reader.ts: reads the interaction log read-only after a position, then hands the records over a slice per request. */
import { parentPort, workerData } from 'node:worker_threads';
import { InteractionLog } from '../../repository/interaction-log.js';

const job = workerData as { dir: string; after: number; upTo: number; slice: number };
// (A read-only open takes every whole record it finds as written: those past upTo may not be durable yet.)
const entries = InteractionLog.open(job.dir, { readOnly: true }).read(job.after).filter((e) => e.position <= job.upTo);
let next = 0;
parentPort!.on('message', () => {
  const slice = entries.slice(next, next + job.slice);
  next += slice.length;
  parentPort!.postMessage(slice); // empty: the end
});
