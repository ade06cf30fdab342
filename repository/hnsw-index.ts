/** Builds and opens the bundle's ANN index: hnswlib over the item embeddings in inner-product space. */
import cliProgress from 'cli-progress';
import hnswlib from 'hnswlib-node';
import type { HnswParams } from './bundle-format.js';
import { DEFAULTS } from '../core/defaults.js';

const { HierarchicalNSW } = hnswlib;
export type HnswIndex = InstanceType<typeof HierarchicalNSW>;

export const HNSW_DEFAULTS = Object.freeze({ m: DEFAULTS.hnswM, efConstruction: DEFAULTS.hnswEfConstruction, efSearch: DEFAULTS.hnswEf, seed: DEFAULTS.hnswSeed });

export interface HnswBuildStats {
  seconds: number;
  itemsPerSecond: number;
}

/** hnswlib-node takes plain arrays only; copy one row of the table into a reusable one (its length set to dim). */
export function rowArray(table: Float32Array, row: number, dim: number, out: number[] = new Array<number>(dim)): number[] {
  out.length = dim;
  const base = row * dim;
  for (let j = 0; j < dim; j++) out[j] = table[base + j];
  return out;
}

/** Label = item row. Writes the index to `file`; shows a progress bar when `progress` is set. */
export function buildHnswIndex(
  items: Float32Array,
  nItems: number,
  dim: number,
  params: HnswParams,
  file: string,
  opts: { progress?: boolean } = {},
): HnswBuildStats {
  const t0 = performance.now();
  const index = new HierarchicalNSW('ip', dim);
  index.initIndex(Math.max(1, nItems), params.m, params.efConstruction, params.seed);
  const bar = opts.progress
    ? new cliProgress.SingleBar(
        { format: 'hnsw index |{bar}| {value}/{total} items | {speed} items/s | eta {eta_formatted}', stream: process.stderr, hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(nItems, 0, { speed: '-' });
  const row = new Array<number>(dim);
  const step = Math.max(1, Math.floor(nItems / 200));
  for (let r = 0; r < nItems; r++) {
    index.addPoint(rowArray(items, r, dim, row), r);
    if (bar && (r + 1) % step === 0) bar.update(r + 1, { speed: Math.round((r + 1) / ((performance.now() - t0) / 1000)) });
  }
  bar?.update(nItems);
  bar?.stop();
  index.writeIndexSync(file);
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, itemsPerSecond: nItems / Math.max(seconds, 1e-9) };
}

/**
 * Opens an index written by buildHnswIndex, with query-time `ef`: the one way the server, its
 * online rebuilds, the tests and the benchmarks open one. Reads off the event loop, so a server
 * loading a new version keeps answering meanwhile.
 */
export async function loadHnswIndex(file: string, dim: number, ef: number): Promise<HnswIndex> {
  const index = new HierarchicalNSW('ip', dim);
  await index.readIndex(file, false);
  index.setEf(ef);
  return index;
}
