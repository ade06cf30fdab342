/** Worker thread of the online learner: writes one snapshot file atomically, off the event loop (its fsync can take long). */
import { parentPort, workerData } from 'node:worker_threads';
import { writeSnapshotFile } from './snapshot.js';

const job = workerData as { dir: string; file: string; data: Uint8Array };
writeSnapshotFile(job.dir, job.file, job.data);
parentPort!.postMessage('written');
