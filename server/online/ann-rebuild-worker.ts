/** Worker thread of ann-rebuild.ts: builds an HNSW index from an item table into a file. */
import { parentPort, workerData } from 'node:worker_threads';
import type { HnswParams } from '../../repository/bundle-format.js';
import { buildHnswIndex } from '../../repository/hnsw-index.js';

const job = workerData as { items: Float32Array; nItems: number; dim: number; params: HnswParams; file: string };
buildHnswIndex(job.items, job.nItems, job.dim, job.params, job.file);
parentPort!.postMessage('built');
