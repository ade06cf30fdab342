/**
 * All-ranking evaluation as the field reports it: every item is scored for every user
 * with at least one held-out item; items of the earlier splits are masked (train for
 * validation, train + validation for test); Recall@K and NDCG@K are averaged over those
 * users. Scores are computed on the tfjs backend in user blocks sized to a memory budget and
 * read where they lie (the wasm heap, no copy into JavaScript); masking writes −∞ into that
 * block in place, and a bounded heap takes each user's top K.
 */
import { tf } from './engine/backend.js';
import { view } from './engine/kernel-io.js';
import type { Csr, Dataset } from '../data/dataset.js';
import { topK } from '../core/topk.js';
import { DEFAULTS } from '../core/defaults.js';

export type Split = 'val' | 'test';
export type Metrics = Record<string, number>;

export interface EvalOptions {
  split: Split;
  ks?: number[];
  /** users scored per matMul block (default: as many as fit BLOCK_SCORES scores) */
  block?: number;
  /** also return each evaluated user's value of this metric (e.g. "recall@20"), in user order */
  perUser?: string;
}

/** Scores held at once: 8M floats (32 MB) bound memory on large catalogs and keep blocks big enough for a fast matMul. */
const BLOCK_SCORES = 8 * 1024 * 1024;

/** emb: [nUsers + nItems, dim], users first (what LightGcn.finalEmbeddings returns). */
export function evaluateEmbeddings(emb: Float32Array, dim: number, data: Dataset, opts: EvalOptions): Metrics {
  return evaluateEmbeddingsWithUsers(emb, dim, data, opts).metrics;
}

/** evaluateEmbeddings, with `opts.perUser` also each evaluated user's value of that metric. */
export function evaluateEmbeddingsWithUsers(emb: Float32Array, dim: number, data: Dataset, opts: EvalOptions): { metrics: Metrics; perUser?: Float64Array } {
  const { nUsers, nItems } = data;
  if (emb.length !== (nUsers + nItems) * dim) {
    throw new Error(`embeddings have ${emb.length} values, expected (${nUsers}+${nItems})×${dim}`);
  }
  return evaluateWithUsers(emb.subarray(0, nUsers * dim), emb.subarray(nUsers * dim), dim, data, opts);
}

export function evaluate(userEmb: Float32Array, itemEmb: Float32Array, dim: number, data: Dataset, opts: EvalOptions): Metrics {
  return evaluateWithUsers(userEmb, itemEmb, dim, data, opts).metrics;
}

/** The metrics, and with `opts.perUser` each evaluated user's value of that metric (for paired comparisons). */
export function evaluateWithUsers(
  userEmb: Float32Array,
  itemEmb: Float32Array,
  dim: number,
  data: Dataset,
  opts: EvalOptions,
): { metrics: Metrics; perUser?: Float64Array } {
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

  const perUserKey = opts.perUser;
  if (perUserKey !== undefined && !(perUserKey in sums)) throw new Error(`evaluate: perUser ${perUserKey} is not one of ${Object.keys(sums).join(', ')}`);
  const perUser = perUserKey !== undefined ? new Float64Array(evalUsers.length) : undefined;
  const one: Metrics = {};
  const block = opts.block ?? Math.max(1, Math.floor(BLOCK_SCORES / data.nItems));
  const itemT = tf.tensor2d(itemEmb, [data.nItems, dim]);
  const backend = tf.backend();
  const top = new Int32Array(kmax);
  const hit = new Uint8Array(data.nItems);
  try {
    for (let start = 0; start < evalUsers.length; start += block) {
      const batch = evalUsers.slice(start, start + block);
      const ub = new Float32Array(batch.length * dim);
      batch.forEach((u, r) => ub.set(userEmb.subarray(u * dim, (u + 1) * dim), r * dim));
      const scores = tf.tidy(() => tf.matMul(tf.tensor2d(ub, [batch.length, dim]), itemT, false, true));
      try {
        // The block as the backend holds it; nothing allocates on the backend until it is disposed.
        const s = view(backend, scores) as Float32Array;
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
          for (const k of ks) one[`recall@${k}`] = one[`ndcg@${k}`] = 0;
          for (let r2 = 0; r2 < got; r2++) {
            if (hit[top[r2]]) {
              hits++;
              dcg += discount[r2];
            }
            while (ki < ks.length && ks[ki] === r2 + 1) {
              accumulate(one, ks[ki], hits, dcg, nTrue, discount);
              ki++;
            }
          }
          for (; ki < ks.length; ki++) accumulate(one, ks[ki], hits, dcg, nTrue, discount);
          for (const key in one) sums[key] += one[key];
          if (perUser) perUser[start + r] = one[perUserKey!];
          for (let p = t0; p < t1; p++) hit[truth.indices[p]] = 0;
        }
      } finally {
        scores.dispose();
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
  return { metrics: out, perUser };
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
