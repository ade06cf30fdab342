/** Worker thread of the online learner: serializes one snapshot and writes it atomically, off the event loop (its checksum and fsync take long). */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeSnapshot, writeSnapshotFile, type SnapshotParts } from './snapshot.js';

const job = workerData as { dir: string; file: string; parts: SnapshotParts };
const data = serializeSnapshot(job.parts);
writeSnapshotFile(job.dir, job.file, data);
parentPort!.postMessage(data.length);
