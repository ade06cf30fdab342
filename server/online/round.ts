/**
 * The jobs of a background fine-tuning round, in order: the training pairs (recent plus replayed
 * old ones), BPR epochs over them, the items that moved enough to re-index, the ANN index
 * refreshed (the exact path's ONNX table is then rebuilt and swapped by ServingModel.replaceExact). The long jobs yield to the
 * event loop and stop as soon as `live()` says the version is no longer served.
 */
import type { Rng } from '../../core/rng.js';
import { rowArray } from '../../repository/hnsw-index.js';
import { grownTo } from '../../core/typed-arrays.js';
import type { ServingModel } from '../serving/serving-model.js';
import { rebuildAnnIndex } from './ann-rebuild.js';
import { bprStep, sampleNegative } from './steps.js';

export interface Pair {
  row: number;
  item: number;
}

const yieldToRequests = () => new Promise((r) => setImmediate(r));

/** The recent pairs, each followed by `replay` old (user, train item) pairs sampled uniformly from the bundle's. */
export function trainingPairs(m: ServingModel, recent: Pair[], replay: number, rng: Rng): Pair[] {
  const pairs: Pair[] = [];
  for (const p of recent) {
    pairs.push(p);
    for (let r = 0; r < replay && m.seenItems.length; r++) {
      const e = rng.int(m.seenItems.length);
      pairs.push({ row: rowOfEntry(m.seenOffsets, e), item: m.seenItems[e] });
    }
  }
  return pairs;
}

/** The user row of entry `e` of the bundle's seen CSR (binary search of the offsets). */
function rowOfEntry(offsets: Int32Array, e: number): number {
  let lo = 0;
  let hi = offsets.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= e) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * `epochs` passes of BPR over the pairs, users and items moving (each step reported to `onStep`).
 * Returns the summed step lengths per item (an upper bound of how far each moved), or null when
 * the version stopped being live.
 */
export async function trainPairs(m: ServingModel, pairs: Pair[], o: { epochs: number; lr: number; reg: number }, rng: Rng, live: () => boolean, onStep?: (row: number, item: number, neg: number) => void): Promise<Float32Array | null> {
  const items = { grad: new Float32Array(m.dim), moved: new Float32Array(m.nItems) };
  let n = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    for (const { row, item } of pairs) {
      if (!live()) return null;
      const neg = sampleNegative(m, row, rng);
      // (items put while the round yields are sampled too: their moves are counted)
      items.moved = grownTo(items.moved, Math.max(item, neg) + 1);
      bprStep(m, row, item, neg, o.lr, o.reg, items);
      onStep?.(row, item, neg); // (before any yield: a snapshot taken meanwhile knows what moved)
      if (++n % 500 === 0) await yieldToRequests();
    }
  }
  return items.moved;
}

/**
 * Items to re-index: those whose drift from their indexed vector (VersionState.drift) is at least
 * `reindexMove` of their norm. `total` counts them all; `items` holds the `limit` most drifted
 * (relative to the norm), in that order. On a 1M catalog a round drifts a third of the items past
 * the threshold, so the scans yield, and of those only the values are sorted (natively) and then
 * the head of the items.
 */
export async function itemsToReindex(m: ServingModel, drift: Float32Array, reindexMove: number, limit = Infinity): Promise<{ items: number[]; total: number }> {
  const d = m.dim;
  const I = m.itemVectors;
  const n = Math.min(m.nItems, drift.length);
  const rel = new Float32Array(n); // 0: below the threshold
  let total = 0;
  for (let it = 0; it < n; it++) {
    if (it > 0 && it % SCAN_SLICE === 0) await yieldToRequests();
    if (drift[it] === 0 || m.catalog.deleted.has(it)) continue; // (a deleted item is out of every answer)
    let n2 = 0;
    for (let c = 0; c < d; c++) n2 += I[it * d + c] ** 2;
    const norm = Math.sqrt(n2);
    if (drift[it] >= reindexMove * norm) {
      rel[it] = norm > 0 ? drift[it] / norm : Infinity;
      total++;
    }
  }
  // the limit-th largest relative drift (a native sort of the values), then only those at or above it
  let cut = 0;
  if (total > limit) {
    const vals = rel.filter((x) => x > 0).sort();
    cut = vals[vals.length - limit];
  }
  const head: number[] = [];
  for (let it = 0; it < n; it++) {
    if (it > 0 && it % (SCAN_SLICE * 8) === 0) await yieldToRequests();
    if (rel[it] > 0 && rel[it] >= cut) head.push(it);
  }
  head.sort((a, b) => rel[b] - rel[a] || a - b);
  return { items: head.length > limit ? head.slice(0, limit) : head, total };
}

/** Item rows scanned per event-loop turn by itemsToReindex (~20k × 64 multiply-adds: a few ms). */
const SCAN_SLICE = 20_000;

/** Event-loop time of one slice of in-place re-links: at 1M items one re-link alone takes ~2.4 ms. */
const RELINK_SLICE_MS = 4;

/**
 * The ANN index: rebuilt off the event loop (`rebuild`, when much of the catalog moved), else
 * the changed items re-linked in place (hnswlib re-links an existing label), in slices of a few
 * ms, in the given order, until `budgetMs` of re-linking is spent. Returns how many of `changed`
 * are now indexed at their current vectors (all of them after a rebuild), or null when the
 * version stopped being live (its index is going away).
 */
export async function refreshAnn(m: ServingModel, changed: number[], rebuild: boolean, live: () => boolean, signal: AbortSignal, budgetMs = Infinity): Promise<number | null> {
  const d = m.dim;
  if (rebuild) {
    const seq = m.placementSeq;
    const index = await rebuildAnnIndex(m.itemVectors, m.nItems, d, m.manifest.hnsw, m.ef, m.ann.threads, signal);
    if (!live()) {
      index.dispose();
      return null;
    }
    // Deleted items stay out of the search in the new index too; items placed (PUT /items) while it was built are linked into it before it serves.
    for (const it of m.catalog.deleted) index.markDelete(it);
    for (const it of m.placedSince(seq)) m.relink(index, it);
    const old = m.ann;
    m.ann = index;
    old.dispose(); // (searches already sent to the threads are answered first: their queue is in order)
    return changed.length;
  }
  const row = new Array<number>(d);
  let spent = 0;
  let k = 0;
  while (k < changed.length && spent < budgetMs) {
    if (!live()) return null;
    const t0 = performance.now();
    do {
      const it = changed[k++];
      m.ann.addPoint(rowArray(m.itemVectors, it, d, row), it);
      if (m.catalog.deleted.has(it)) m.ann.markDelete(it); // (addPoint clears the mark)
    } while (k < changed.length && performance.now() - t0 < Math.min(RELINK_SLICE_MS, budgetMs - spent));
    spent += performance.now() - t0;
    await yieldToRequests();
  }
  return live() ? k : null;
}
