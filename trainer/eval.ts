/**
 * All-ranking evaluation as the field reports it: every item is scored for every user
 * with at least one held-out item; items of the earlier splits are masked (train for
 * validation, train + validation for test); Recall@K and NDCG@K are averaged over those
 * users. Scores are computed on the tfjs backend in user blocks; masking and top-K in JS.
 */
import { tf } from './engine/backend.js';
import type { Csr, Dataset } from '../data/dataset.js';
import { topK } from '../core/topk.js';
import { DEFAULTS } from '../core/defaults.js';

export type Split = 'val' | 'test';
export type Metrics = Record<string, number>;

export interface EvalOptions {
  split: Split;
  ks?: number[];
  /** users scored per matMul block */
  block?: number;
}

/** emb: [nUsers + nItems, dim], users first (what LightGcn.finalEmbeddings returns). */
export function evaluateEmbeddings(emb: Float32Array, dim: number, data: Dataset, opts: EvalOptions): Metrics {
  const { nUsers, nItems } = data;
  if (emb.length !== (nUsers + nItems) * dim) {
    throw new Error(`embeddings have ${emb.length} values, expected (${nUsers}+${nItems})×${dim}`);
  }
  const users = emb.subarray(0, nUsers * dim);
  const items = emb.subarray(nUsers * dim);
  return evaluate(users, items, dim, data, opts);
}

export function evaluate(
  userEmb: Float32Array,
  itemEmb: Float32Array,
  dim: number,
  data: Dataset,
  opts: EvalOptions,
): Metrics {
  const ks = [...(opts.ks ?? DEFAULTS.ks)].sort((a, b) => a - b);
  const kmax = Math.min(ks[ks.length - 1], data.nItems);
  const truth = opts.split === 'val' ? data.valByUser : data.testByUser;
  const masks: Csr[] = opts.split === 'val' ? [data.trainByUser] : [data.trainByUser, data.valByUser];
  const evalUsers: number[] = [];
  for (let u = 0; u < data.nUsers; u++) if (truth.indptr[u + 1] > truth.indptr[u]) evalUsers.push(u);

  const sums: Metrics = {};
  for (const k of ks) sums[`recall@${k}`] = sums[`ndcg@${k}`] = 0;
  const discount = new Float64Array(kmax + 1);
  for (let r = 0; r < kmax; r++) discount[r] = 1 / Math.log2(r + 2);

  const block = opts.block ?? 1024;
  const itemT = tf.tensor2d(itemEmb, [data.nItems, dim]);
  const top = new Int32Array(kmax);
  const hit = new Uint8Array(data.nItems);
  try {
    for (let start = 0; start < evalUsers.length; start += block) {
      const batch = evalUsers.slice(start, start + block);
      const ub = new Float32Array(batch.length * dim);
      batch.forEach((u, r) => ub.set(userEmb.subarray(u * dim, (u + 1) * dim), r * dim));
      const scores = tf.tidy(() => tf.matMul(tf.tensor2d(ub, [batch.length, dim]), itemT, false, true));
      const s = scores.dataSync() as Float32Array;
      scores.dispose();
      for (let r = 0; r < batch.length; r++) {
        const u = batch[r];
        const off = r * data.nItems;
        for (const m of masks) for (let p = m.indptr[u]; p < m.indptr[u + 1]; p++) s[off + m.indices[p]] = -Infinity;
        const got = topK(s, off, data.nItems, kmax, top);
        const t0 = truth.indptr[u];
        const t1 = truth.indptr[u + 1];
        const nTrue = t1 - t0;
        for (let p = t0; p < t1; p++) hit[truth.indices[p]] = 1;
        let hits = 0;
        let dcg = 0;
        let ki = 0;
        for (let r2 = 0; r2 < got; r2++) {
          if (hit[top[r2]]) {
            hits++;
            dcg += discount[r2];
          }
          while (ki < ks.length && ks[ki] === r2 + 1) {
            accumulate(sums, ks[ki], hits, dcg, nTrue, discount);
            ki++;
          }
        }
        for (; ki < ks.length; ki++) accumulate(sums, ks[ki], hits, dcg, nTrue, discount);
        for (let p = t0; p < t1; p++) hit[truth.indices[p]] = 0;
      }
    }
  } finally {
    itemT.dispose();
  }
  const out: Metrics = {};
  for (const k of ks) {
    out[`recall@${k}`] = evalUsers.length ? sums[`recall@${k}`] / evalUsers.length : 0;
    out[`ndcg@${k}`] = evalUsers.length ? sums[`ndcg@${k}`] / evalUsers.length : 0;
  }
  out.users = evalUsers.length;
  return out;
}

function accumulate(sums: Metrics, k: number, hits: number, dcg: number, nTrue: number, discount: Float64Array): void {
  let idcg = 0;
  const m = Math.min(nTrue, k);
  for (let r = 0; r < m; r++) idcg += r < discount.length ? discount[r] : 1 / Math.log2(r + 2);
  sums[`recall@${k}`] += hits / nTrue;
  sums[`ndcg@${k}`] += dcg / idcg;
}

/** The most-popular baseline: every user gets the items with the most train interactions. */
export function evaluatePopularity(data: Dataset, opts: EvalOptions): Metrics {
  const users = new Float32Array(data.nUsers).fill(1);
  const items = Float32Array.from(data.itemPopularity);
  return evaluate(users, items, 1, data, opts);
}
