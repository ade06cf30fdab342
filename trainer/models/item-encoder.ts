/**
 * The item encoder (issue 18): an item's modality feature vectors → a vector in the trained
 * student's item space, so that an item added after export can be served from its features alone.
 *
 * Input: each modality's raw features, z-scored per column with the catalog's statistics, the
 * modalities concatenated. Designs (`--item-encoder-design`):
 *  - `ridge`: one linear layer, closed-form ridge regression onto the student's item vectors (the
 *    floor); λ picked from a grid on the held-out items;
 *  - `mlp`: Linear → ReLU → Linear fit to the student's item vectors with
 *    ‖f − e‖² / mean‖e‖² + (1 − cos(f, e));
 *  - `mlp-bpr`: `mlp` + w · BPR on the training interactions with the student's user vectors
 *    frozen: −log σ(u·f(x_i) − u·f(x_j)), i the user's train item, j a training item outside its
 *    train set, both encoded;
 *  - `neighbors`: no regression: the new item is the softmax(sim / τ)-weighted mean of the student
 *    vectors of its K most similar training items (sim: mean of the per-modality cosines of the
 *    z-scored features), optionally rescaled to their weighted mean norm; K, τ and the rescale are
 *    chosen on held-out items (NEIGHBOR_KS × NEIGHBOR_TAUS × rescale, averaged over NEIGHBOR_FOLDS
 *    disjoint held-out shares, each placed from the items outside it), then the table holds every
 *    training item.
 * A regression's output is shrunk toward the mean (the conditional mean of an uncertain target), so
 * its scale is calibrated on the held-out items: a global factor (OUTPUT_SCALES) or each output
 * rescaled to that factor times the training items' mean norm, whichever serves the valid ranking best.
 * The targets are the items with train interactions (an item without any has an untrained vector);
 * a seeded share of them is held out as validation: its vectors are encoded from features alone,
 * compared with the student's, and ranked on the valid split in place of the student's (the
 * cold-start protocol in miniature). The MLP keeps the epoch of the best validation Recall@20, then
 * is refit on every training item for that many epochs (ridge: the best λ, refit likewise).
 */
import { tf } from '../engine/backend.js';
import type { Csr } from '../../core/csr.js';
import { csrHas } from '../../core/csr.js';
import { Rng } from '../../core/rng.js';
import { topK } from '../../core/topk.js';
import type { ItemEncoderCriterion, ItemEncoderDesign } from '../../core/defaults.js';
import { dot, evaluateNeighborGrid, scoreRow, type GridCandidate, type GridFold, type GridTargets } from './neighbor-grid.js';
import { encodeReference, neighborKeys, weightedMean, type DenseLayer, type ItemEncoderWeights, type NeighborTable } from '../../repository/onnx-item-encoder-graph.js';

export interface ItemEncoderConfig {
  design: ItemEncoderDesign;
  hidden: number;
  epochs: number;
  lr: number;
  batch: number;
  bprWeight: number;
  holdout: number;
  evalEvery: number;
  /** what the output scale and the neighbors settings are chosen by (default overall) */
  criterion?: ItemEncoderCriterion;
  seed: number;
}

export interface FeatureTable {
  name: string;
  dim: number;
  /** [nItems, dim], row-major */
  data: Float32Array;
}

/** What the encoder is fit to: the catalog's features and the trained student's tables and train interactions. */
export interface EncoderTargets extends GridTargets {
  modalities: FeatureTable[];
  itemPopularity: Int32Array;
}

export interface RankingFigures {
  recall: number;
  ndcg: number;
  /** users with at least one held-out interaction on a new item */
  users: number;
  interactions: number;
  /** each such user's recall@k, in user order (for paired comparisons) */
  perUserRecall: Float64Array;
  perUserNdcg: Float64Array;
  userRows: Int32Array;
}

/** Column mean and 1/sd over all items (features are known for every item of the catalog). */
export function normalization(m: FeatureTable, nItems: number): { mean: Float32Array; invStd: Float32Array } {
  const mean = new Float32Array(m.dim);
  const invStd = new Float32Array(m.dim);
  for (let c = 0; c < m.dim; c++) {
    let s = 0;
    for (let r = 0; r < nItems; r++) s += m.data[r * m.dim + c];
    const mu = s / nItems;
    let v = 0;
    for (let r = 0; r < nItems; r++) v += (m.data[r * m.dim + c] - mu) ** 2;
    const sd = Math.sqrt(v / nItems);
    mean[c] = mu;
    invStd[c] = sd > 1e-8 ? 1 / sd : 1;
  }
  return { mean, invStd };
}

/** The encoder's input for every item: z-scored modalities side by side, [nItems, D]. */
function inputTable(t: EncoderTargets, norm: { mean: Float32Array; invStd: Float32Array }[]): { x: Float32Array; width: number } {
  const width = t.modalities.reduce((s, m) => s + m.dim, 0);
  const x = new Float32Array(t.nItems * width);
  let off = 0;
  t.modalities.forEach((m, k) => {
    const { mean, invStd } = norm[k];
    for (let r = 0; r < t.nItems; r++) for (let c = 0; c < m.dim; c++) x[r * width + off + c] = (m.data[r * m.dim + c] - mean[c]) * invStd[c];
    off += m.dim;
  });
  return { x, width };
}

/** Items with train interactions, split into fit and held-out rows (seeded). */
export function splitTrainingItems(pop: Int32Array, holdout: number, seed: number): { fit: Int32Array; held: Int32Array } {
  const rows: number[] = [];
  for (let i = 0; i < pop.length; i++) if (pop[i] > 0) rows.push(i);
  const rng = new Rng(seed + 1811);
  const a = Int32Array.from(rows);
  rng.shuffle(a);
  const nHeld = Math.max(1, Math.round(a.length * holdout));
  const held = a.slice(0, nHeld).sort();
  const fit = a.slice(nHeld).sort();
  return { fit, held };
}

/**
 * Ranking of new items over the whole catalog: for every user with a `truth` interaction on an
 * item marked new, all items are scored by u·v (the `masks` items set aside), and Recall@k /
 * NDCG@k count only the truth interactions on new items (binary relevance, ideal DCG over
 * min(k, those items)).
 */
export function rankNewItems(users: Float32Array, items: Float32Array, dim: number, nItems: number, truth: Csr, masks: Csr[], isNew: Uint8Array, k: number): RankingFigures {
  const nUsers = truth.indptr.length - 1;
  const scores = new Float32Array(nItems);
  const top = new Int32Array(k);
  const rec: number[] = [];
  const nd: number[] = [];
  const rows: number[] = [];
  let interactions = 0;
  for (let u = 0; u < nUsers; u++) {
    const want: number[] = [];
    for (let p = truth.indptr[u]; p < truth.indptr[u + 1]; p++) if (isNew[truth.indices[p]]) want.push(truth.indices[p]);
    if (want.length === 0) continue;
    scoreRow(users, u * dim, items, nItems, dim, scores);
    for (const m of masks) for (let p = m.indptr[u]; p < m.indptr[u + 1]; p++) scores[m.indices[p]] = -Infinity;
    // a held-out item the user also has in a masked split stays scored (as the evaluation does: it is truth)
    const got = topK(scores, 0, nItems, k, top);
    const wanted = new Set(want);
    let hits = 0;
    let dcg = 0;
    for (let r = 0; r < got; r++) {
      if (wanted.has(top[r])) {
        hits++;
        dcg += 1 / Math.log2(r + 2);
      }
    }
    let idcg = 0;
    for (let r = 0; r < Math.min(k, want.length); r++) idcg += 1 / Math.log2(r + 2);
    rec.push(hits / want.length);
    nd.push(dcg / idcg);
    rows.push(u);
    interactions += want.length;
  }
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
  return { recall: mean(rec), ndcg: mean(nd), users: rows.length, interactions, perUserRecall: Float64Array.from(rec), perUserNdcg: Float64Array.from(nd), userRows: Int32Array.from(rows) };
}

export interface EncoderValidation {
  /** mean cosine between encoded and student vectors of the held-out items */
  cosine: number;
  /** mean ‖f − e‖² / mean ‖e‖² on them */
  relMse: number;
  /** Recall@20 / NDCG@20 of valid interactions on held-out items, their vectors encoded */
  recall: number;
  ndcg: number;
  /** the same with the student's own vectors (what a trained item gets: the ceiling) */
  studentRecall: number;
  studentNdcg: number;
  users: number;
  /** Recall@20 over every valid interaction (old items too) with the held-out items encoded, and with the student's own vectors: what placing them costs the rest (computed once, for the kept fit) */
  overallRecall?: number;
  studentOverallRecall?: number;
}

/** validateEncoded plus the all-interactions figures. */
function withOverall(t: EncoderTargets, held: Int32Array, enc: Float32Array, v: EncoderValidation): EncoderValidation {
  const all = new Uint8Array(t.nItems).fill(1);
  const table = t.items.slice();
  for (let h = 0; h < held.length; h++) table.set(enc.subarray(h * t.dim, (h + 1) * t.dim), held[h] * t.dim);
  const o = rankNewItems(t.users, table, t.dim, t.nItems, t.valByUser, [t.trainByUser], all, 20);
  const so = rankNewItems(t.users, t.items, t.dim, t.nItems, t.valByUser, [t.trainByUser], all, 20);
  return { ...v, overallRecall: o.recall, studentOverallRecall: so.recall };
}

/** Validation of encoded vectors `enc` ([held.length, dim]) for the held-out rows. */
export function validateEncoded(t: EncoderTargets, held: Int32Array, enc: Float32Array, ceiling?: { recall: number; ndcg: number }): EncoderValidation {
  const d = t.dim;
  let cos = 0;
  let se = 0;
  let norm = 0;
  for (let h = 0; h < held.length; h++) {
    const e = t.items.subarray(held[h] * d, (held[h] + 1) * d);
    const f = enc.subarray(h * d, (h + 1) * d);
    let dot = 0;
    let ne = 0;
    let nf = 0;
    for (let j = 0; j < d; j++) {
      dot += e[j] * f[j];
      ne += e[j] * e[j];
      nf += f[j] * f[j];
      se += (e[j] - f[j]) ** 2;
    }
    norm += ne;
    cos += dot / Math.sqrt(ne * nf + 1e-12);
  }
  const isNew = new Uint8Array(t.nItems);
  for (const r of held) isNew[r] = 1;
  const table = t.items.slice();
  for (let h = 0; h < held.length; h++) table.set(enc.subarray(h * d, (h + 1) * d), held[h] * d);
  const r = rankNewItems(t.users, table, d, t.nItems, t.valByUser, [t.trainByUser], isNew, 20);
  const c = ceiling ?? rankNewItems(t.users, t.items, d, t.nItems, t.valByUser, [t.trainByUser], isNew, 20);
  return { cosine: cos / held.length, relMse: se / Math.max(norm, 1e-12), recall: r.recall, ndcg: r.ndcg, studentRecall: c.recall, studentNdcg: c.ndcg, users: r.users };
}

function gatherRowsJs(src: Float32Array, width: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(src.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return out;
}

/** Solves (A + λI) X = B for symmetric positive definite A [n, n] and B [n, m] by Cholesky (float64). */
function solveRidge(a: Float64Array, b: Float64Array, n: number, m: number, lambda: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j] + (i === j ? lambda : 0);
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / l[j * n + j];
    }
  }
  const x = new Float64Array(n * m);
  // forward: L y = b; back: Lᵀ x = y (column by column of B, all columns at once per row)
  const y = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m; c++) {
      let s = b[i * m + c];
      for (let k = 0; k < i; k++) s -= l[i * n + k] * y[k * m + c];
      y[i * m + c] = s / l[i * n + i];
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let c = 0; c < m; c++) {
      let s = y[i * m + c];
      for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k * m + c];
      x[i * m + c] = s / l[i * n + i];
    }
  }
  return x;
}

/** Ridge regression of the targets on the inputs over `rows`: one dense layer (bias = the centred fit's). */
function fitRidge(x: Float32Array, width: number, e: Float32Array, d: number, rows: Int32Array, lambda: number): DenseLayer {
  const n = rows.length;
  const mx = new Float64Array(width);
  const me = new Float64Array(d);
  for (const r of rows) {
    for (let a = 0; a < width; a++) mx[a] += x[r * width + a] / n;
    for (let c = 0; c < d; c++) me[c] += e[r * d + c] / n;
  }
  const xtx = new Float64Array(width * width);
  const xte = new Float64Array(width * d);
  const xr = new Float64Array(width);
  for (const r of rows) {
    for (let a = 0; a < width; a++) xr[a] = x[r * width + a] - mx[a];
    for (let a = 0; a < width; a++) {
      const v = xr[a];
      if (v === 0) continue;
      const base = a * width;
      for (let b2 = 0; b2 <= a; b2++) xtx[base + b2] += v * xr[b2];
      for (let c = 0; c < d; c++) xte[a * d + c] += v * (e[r * d + c] - me[c]);
    }
  }
  for (let a = 0; a < width; a++) for (let b2 = 0; b2 < a; b2++) xtx[b2 * width + a] = xtx[a * width + b2];
  const w = solveRidge(xtx, xte, width, d, lambda * n);
  const b = new Float32Array(d);
  for (let c = 0; c < d; c++) {
    let s = me[c];
    for (let a = 0; a < width; a++) s -= mx[a] * w[a * d + c];
    b[c] = s;
  }
  return { w: Float32Array.from(w), b, inDim: width, outDim: d };
}

/** λ (per training item) tried by the ridge design; the best on the held-out items is kept. */
export const RIDGE_LAMBDAS = [1e-3, 1e-2, 1e-1, 1, 10];

export interface FitReport {
  design: ItemEncoderDesign;
  weights: ItemEncoderWeights;
  validation: EncoderValidation;
  /** the MLP's epochs (best by validation), or the ridge's λ */
  bestEpoch?: number;
  lambda?: number;
  /** the output scale chosen on the held-out items' ranking (OUTPUT_SCALES), folded into the last layer (or, with outputNorm, the factor on the mean item norm) */
  outputScale?: number;
  /** when the calibration chose to rescale each output to outputScale × the training items' mean norm: that norm */
  outputNorm?: number;
  /** the neighbors design: every (K, τ, rescale) tried on the held-out items, and the chosen one */
  grid?: { k: number; tau: number; rescale: boolean; recall: number; ndcg: number; overallRecall: number; folds: number }[];
  neighbors?: { k: number; tau: number; rescale: boolean };
  curve: { epoch: number; recall: number; cosine: number; loss: number }[];
  seconds: number;
}

class Mlp {
  readonly vars: tf.Variable[];
  constructor(width: number, hidden: number, d: number, seed: number) {
    const rng = new Rng(seed + 4099);
    const glorot = (i: number, o: number) => {
      const lim = Math.sqrt(6 / (i + o));
      return tf.tensor2d(Float32Array.from({ length: i * o }, () => (rng.next() * 2 - 1) * lim), [i, o]);
    };
    this.vars = [tf.variable(glorot(width, hidden)), tf.variable(tf.zeros([hidden])), tf.variable(glorot(hidden, d)), tf.variable(tf.zeros([d]))];
  }
  forward(x: tf.Tensor2D): tf.Tensor2D {
    const [w1, b1, w2, b2] = this.vars;
    return tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1 as tf.Tensor2D), b1)) as tf.Tensor2D, w2 as tf.Tensor2D), b2) as tf.Tensor2D;
  }
  /** The layers, the output scaled by `scale` (the MLP is fit to targets divided by it). */
  layers(scale = 1): DenseLayer[] {
    const [w1, b1, w2, b2] = this.vars.map((v) => (v.dataSync() as Float32Array).slice());
    for (const a of [w2, b2]) for (let i = 0; i < a.length; i++) a[i] *= scale;
    const [width, hidden] = this.vars[0].shape as [number, number];
    const d = this.vars[2].shape[1] as number;
    return [
      { w: w1, b: b1, inDim: width, outDim: hidden },
      { w: w2, b: b2, inDim: hidden, outDim: d },
    ];
  }
  dispose(): void {
    tf.dispose(this.vars);
  }
}

/**
 * Fits the encoder on `fit` rows; with `held` rows, validates every cfg.evalEvery epochs and
 * returns the epoch of the best validation Recall@20 (the MLP designs). `epochs` overrides cfg's.
 */
function trainMlp(t: EncoderTargets, x: Float32Array, width: number, cfg: ItemEncoderConfig, fit: Int32Array, held: Int32Array | null, epochs: number, ceiling?: { recall: number; ndcg: number }) {
  const d = t.dim;
  const mlp = new Mlp(width, cfg.hidden, d, cfg.seed);
  const opt = tf.train.adam(cfg.lr);
  const rng = new Rng(cfg.seed + 313);
  let meanSq = 0;
  for (const r of fit) for (let j = 0; j < d; j++) meanSq += t.items[r * d + j] ** 2 / fit.length;
  // fit to targets of unit RMS per column (the student's scale varies with its training), scaled back in the output layer
  const scale = Math.sqrt(meanSq / d) || 1;
  const targets = Float32Array.from(t.items, (v) => v / scale);
  // BPR pairs: train interactions whose item is a fit row; negatives are fit rows outside the user's train set
  const isFit = new Uint8Array(t.nItems);
  for (const r of fit) isFit[r] = 1;
  const pairU: number[] = [];
  const pairI: number[] = [];
  const bpr = cfg.design === 'mlp-bpr' && cfg.bprWeight > 0;
  if (bpr) {
    for (let u = 0; u < t.nUsers; u++) for (let p = t.trainByUser.indptr[u]; p < t.trainByUser.indptr[u + 1]; p++) if (isFit[t.trainByUser.indices[p]]) (pairU.push(u), pairI.push(t.trainByUser.indices[p]));
  }
  const order = Int32Array.from(fit);
  const curve: FitReport['curve'] = [];
  let best = { recall: -1, epoch: 0, layers: null as DenseLayer[] | null, validation: null as EncoderValidation | null };
  const b = Math.min(cfg.batch, fit.length);
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      rng.shuffle(order);
      let lossSum = 0;
      let steps = 0;
      for (let s = 0; s + b <= order.length || (s === 0 && order.length > 0); s += b) {
        const rows = order.subarray(s, Math.min(s + b, order.length));
        const xb = tf.tensor2d(gatherRowsJs(x, width, rows), [rows.length, width]);
        const eb = tf.tensor2d(gatherRowsJs(targets, d, rows), [rows.length, d]);
        let bu: tf.Tensor2D | null = null;
        let bi: tf.Tensor2D | null = null;
        let bj: tf.Tensor2D | null = null;
        if (bpr) {
          const us = new Int32Array(rows.length);
          const is = new Int32Array(rows.length);
          const js = new Int32Array(rows.length);
          for (let k = 0; k < rows.length; k++) {
            const p = Math.floor(rng.next() * pairU.length);
            us[k] = pairU[p];
            is[k] = pairI[p];
            let j = fit[Math.floor(rng.next() * fit.length)];
            for (let tries = 0; tries < 20 && csrHas(t.trainByUser, us[k], j); tries++) j = fit[Math.floor(rng.next() * fit.length)];
            js[k] = j;
          }
          bu = tf.tensor2d(gatherRowsJs(t.users, d, us), [rows.length, d]);
          bi = tf.tensor2d(gatherRowsJs(x, width, is), [rows.length, width]);
          bj = tf.tensor2d(gatherRowsJs(x, width, js), [rows.length, width]);
        }
        const loss = opt.minimize(() => {
          const f = mlp.forward(xb);
          const mse = tf.div(tf.mean(tf.sum(tf.square(tf.sub(f, eb)), 1)), d);
          const dot = tf.sum(tf.mul(f, eb), 1);
          const cos = tf.div(dot, tf.sqrt(tf.add(tf.mul(tf.sum(tf.square(f), 1), tf.sum(tf.square(eb), 1)), 1e-12)));
          let l = tf.add(mse, tf.mean(tf.sub(1, cos))) as tf.Scalar;
          if (bu && bi && bj) {
            const diff = tf.mul(tf.sum(tf.mul(bu, tf.sub(mlp.forward(bi), mlp.forward(bj))), 1), scale);
            l = tf.add(l, tf.mul(tf.mean(tf.softplus(tf.neg(diff))), cfg.bprWeight)) as tf.Scalar;
          }
          return l;
        }, true, mlp.vars);
        lossSum += loss!.dataSync()[0];
        steps++;
        tf.dispose([loss!, xb, eb, ...(bu ? [bu, bi!, bj!] : [])]);
      }
      if (held && (epoch % cfg.evalEvery === 0 || epoch === epochs)) {
        // the epoch is chosen by the held-out cosine (the shape of the map); the output scale is calibrated on ranking afterwards
        const layers = mlp.layers(scale);
        const cos = heldCosine(t, held, encodeRows(x, width, layers, held));
        curve.push({ epoch, recall: NaN, cosine: cos, loss: lossSum / steps });
        if (cos > best.recall) best = { recall: cos, epoch, layers, validation: null };
      }
    }
    if (!held) best = { recall: 0, epoch: epochs, layers: mlp.layers(scale), validation: null };
    void ceiling;
    return { layers: best.layers!, epoch: best.epoch, validation: best.validation, curve };
  } finally {
    mlp.dispose();
    opt.dispose();
  }
}

/** Mean cosine between encoded (`enc`, [held.length, d]) and student vectors of the held-out rows. */
function heldCosine(t: EncoderTargets, held: Int32Array, enc: Float32Array): number {
  const d = t.dim;
  let cos = 0;
  for (let h = 0; h < held.length; h++) {
    let dot = 0;
    let ne = 0;
    let nf = 0;
    for (let j = 0; j < d; j++) {
      const e = t.items[held[h] * d + j];
      const f = enc[h * d + j];
      dot += e * f;
      ne += e * e;
      nf += f * f;
    }
    cos += dot / Math.sqrt(ne * nf + 1e-12);
  }
  return cos / held.length;
}

/**
 * Output scales tried on the held-out items' ranking: a regression predicts the conditional mean,
 * whose norm shrinks with the uncertainty, so encoded items would rank below every trained one.
 */
export const OUTPUT_SCALES = [0.75, 1, 1.5, 2, 3, 4];

/**
 * The calibration with the best Recall@20 over *every* valid interaction with the held-out items
 * encoded (old items' too): new-item recall alone would reward any inflation (at scale 6 on
 * scientific it halved the overall figure while doubling the new items'), so the scale that serves
 * the whole catalog best is kept. Candidates: the output times alpha (OUTPUT_SCALES), or each output
 * rescaled to alpha × the fit rows' mean student norm (`norm`).
 */
function calibrate(t: EncoderTargets, held: Int32Array, fit: Int32Array, enc: Float32Array, ceiling: { recall: number; ndcg: number }, ev: ColdEvaluator, criterion: ItemEncoderCriterion = 'overall'): { alpha: number; norm?: number; v: EncoderValidation } {
  const d = t.dim;
  let meanNorm = 0;
  for (const r of fit) meanNorm += Math.sqrt(dot(t.items, r * d, t.items, r * d, d)) / fit.length;
  let best: { alpha: number; norm?: number; score: number } | null = null;
  for (const alpha of OUTPUT_SCALES) {
    for (const norm of [undefined, meanNorm * alpha]) {
      const e = norm === undefined ? Float32Array.from(enc, (x) => x * alpha) : toNorm(enc, d, norm);
      const r = ev.evaluate(e);
      const score = criterion === 'overall' ? r.overallRecall : r.recall;
      if (!best || score > best.score) best = { alpha, norm, score };
    }
  }
  const b = best!;
  const e = b.norm === undefined ? Float32Array.from(enc, (x) => x * b.alpha) : toNorm(enc, d, b.norm);
  return { alpha: b.alpha, norm: b.norm, v: withOverall(t, held, e, validateEncoded(t, held, e, ceiling)) };
}

/** Each row of x ([n, d]) rescaled to norm `target` (as the graph's outputNorm does). */
function toNorm(x: Float32Array, d: number, target: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    const f = target / Math.sqrt(dot(x, r * d, x, r * d, d) + 1e-12);
    for (let j = 0; j < d; j++) out[r * d + j] = x[r * d + j] * f;
  }
  return out;
}

/**
 * Many candidate placements of the same held-out rows, ranked fast: every valid user's top 20 among
 * the items that stay (train items masked, held-out rows set aside) is computed once; a candidate
 * only scores the held-out rows and merges them in (ties: the lower item first, as topK). Gives the
 * new-item Recall@20 / NDCG@20 (users with a valid interaction on a held-out row) and the Recall@20
 * over every valid interaction, as validateEncoded / withOverall would.
 */
export class ColdEvaluator {
  private readonly users: Int32Array;
  private readonly oldScore: Float32Array;
  private readonly oldItem: Int32Array;
  private readonly oldCount: Int32Array;
  private readonly isHeld: Int32Array;
  constructor(
    private readonly t: EncoderTargets,
    private readonly held: Int32Array,
    private readonly k = 20,
  ) {
    const { nItems, dim: d, valByUser: val, trainByUser: train } = t;
    this.isHeld = new Int32Array(nItems).fill(-1);
    held.forEach((r, h) => (this.isHeld[r] = h));
    const us: number[] = [];
    for (let u = 0; u < t.nUsers; u++) if (val.indptr[u + 1] > val.indptr[u]) us.push(u);
    this.users = Int32Array.from(us);
    this.oldScore = new Float32Array(us.length * k);
    this.oldItem = new Int32Array(us.length * k);
    this.oldCount = new Int32Array(us.length);
    const scores = new Float32Array(nItems);
    const top = new Int32Array(k);
    us.forEach((u, n) => {
      scoreRow(t.users, u * d, t.items, nItems, d, scores);
      for (let i = 0; i < nItems; i++) if (this.isHeld[i] >= 0) scores[i] = -Infinity;
      for (let p = train.indptr[u]; p < train.indptr[u + 1]; p++) scores[train.indices[p]] = -Infinity;
      const got = topK(scores, 0, nItems, k, top);
      this.oldCount[n] = got;
      for (let r = 0; r < got; r++) {
        this.oldItem[n * k + r] = top[r];
        this.oldScore[n * k + r] = scores[top[r]];
      }
    });
  }

  /** enc: [held.length, dim], the held-out rows' candidate vectors. */
  evaluate(enc: Float32Array): { recall: number; ndcg: number; overallRecall: number } {
    const { t, held, k } = this;
    const d = t.dim;
    const val = t.valByUser;
    const train = t.trainByUser;
    const hs = new Float32Array(held.length);
    const masked = new Uint8Array(held.length);
    const order = new Int32Array(held.length);
    let rec = 0;
    let nd = 0;
    let nNew = 0;
    let overall = 0;
    this.users.forEach((u, n) => {
      for (let h = 0; h < held.length; h++) hs[h] = dot(t.users, u * d, enc, h * d, d);
      for (let p = train.indptr[u]; p < train.indptr[u + 1]; p++) {
        const h = this.isHeld[train.indices[p]];
        if (h >= 0) (masked[h] = 1), (hs[h] = -Infinity);
      }
      // the held rows' top k (by score, then item), merged with the old top k
      const got = topK(hs, 0, held.length, k, order);
      let a = 0;
      let b = 0;
      const o = n * k;
      const merged: number[] = [];
      while (merged.length < k && (a < this.oldCount[n] || b < got)) {
        const takeOld =
          b >= got || (a < this.oldCount[n] && (this.oldScore[o + a] > hs[order[b]] || (this.oldScore[o + a] === hs[order[b]] && this.oldItem[o + a] < held[order[b]])));
        merged.push(takeOld ? this.oldItem[o + a++] : held[order[b++]]);
      }
      for (let p = train.indptr[u]; p < train.indptr[u + 1]; p++) {
        const h = this.isHeld[train.indices[p]];
        if (h >= 0) masked[h] = 0;
      }
      const want = new Set<number>();
      let wantNew = 0;
      for (let p = val.indptr[u]; p < val.indptr[u + 1]; p++) {
        want.add(val.indices[p]);
        if (this.isHeld[val.indices[p]] >= 0) wantNew++;
      }
      let hits = 0;
      let newHits = 0;
      let dcg = 0;
      merged.forEach((it, r) => {
        if (!want.has(it)) return;
        hits++;
        if (this.isHeld[it] >= 0) {
          newHits++;
          dcg += 1 / Math.log2(r + 2);
        }
      });
      overall += hits / (val.indptr[u + 1] - val.indptr[u]);
      if (wantNew > 0) {
        let idcg = 0;
        for (let r = 0; r < Math.min(k, wantNew); r++) idcg += 1 / Math.log2(r + 2);
        rec += newHits / wantNew;
        nd += dcg / idcg;
        nNew++;
      }
    });
    return { recall: nNew ? rec / nNew : 0, ndcg: nNew ? nd / nNew : 0, overallRecall: this.users.length ? overall / this.users.length : 0 };
  }
}

/** K (neighbours) tried by the neighbors design on the held-out items. */
export const NEIGHBOR_KS = [1, 3, 5, 10, 20, 50];
/** τ (softmax temperature over the cosines) tried by the neighbors design. */
export const NEIGHBOR_TAUS = [0.01, 0.03, 0.1, 0.3, 1];

/** Validation folds of the neighbors design: the held-out split and up to NEIGHBOR_FOLDS − 1 more disjoint ones of its size (cheap: nothing is trained). */
export const NEIGHBOR_FOLDS = 5;

/** Each query row's `kMax` most similar candidate rows (ties: the lower candidate first) and their float64 similarities. */
function neighborLists(keys: Float64Array, D: number, queries: Int32Array, cands: Int32Array, kMax: number): { idx: Int32Array; sim: Float64Array } {
  const idx = new Int32Array(queries.length * kMax);
  const sim = new Float64Array(queries.length * kMax);
  const sims = new Float32Array(cands.length);
  const top = new Int32Array(kMax);
  const dot64 = (qo: number, ko: number) => {
    let s = 0;
    for (let c = 0; c < D; c++) s += keys[qo + c] * keys[ko + c];
    return s;
  };
  for (let h = 0; h < queries.length; h++) {
    const qo = queries[h] * D;
    // four candidates at a time, each sum in dot64's order (the same values, fewer loads of the query)
    let j = 0;
    for (; j + 4 <= cands.length; j += 4) {
      const [o0, o1, o2, o3] = [cands[j] * D, cands[j + 1] * D, cands[j + 2] * D, cands[j + 3] * D];
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let c = 0; c < D; c++) {
        const x = keys[qo + c];
        s0 += x * keys[o0 + c];
        s1 += x * keys[o1 + c];
        s2 += x * keys[o2 + c];
        s3 += x * keys[o3 + c];
      }
      sims[j] = s0;
      sims[j + 1] = s1;
      sims[j + 2] = s2;
      sims[j + 3] = s3;
    }
    for (; j < cands.length; j++) sims[j] = dot64(qo, cands[j] * D);
    topK(sims, 0, cands.length, kMax, top);
    for (let a = 0; a < kMax; a++) {
      idx[h * kMax + a] = cands[top[a]];
      sim[h * kMax + a] = dot64(qo, cands[top[a]] * D);
    }
  }
  return { idx, sim };
}

/**
 * The neighbors design's validation folds (each held-out row's nearest rows outside its fold), its
 * candidates (K, τ, rescale) in grid order, and `place`: a candidate's vectors for a fold's rows.
 */
export function neighborGridSetup(t: EncoderTargets, base: Pick<ItemEncoderWeights, 'modalities' | 'mean' | 'invStd'>, fit: Int32Array, held: Int32Array, all: Int32Array, seed: number) {
  const d = t.dim;
  const keys = neighborKeys(base, t.modalities.map((m) => m.data), t.nItems);
  const D = t.modalities.reduce((s, m) => s + m.dim, 0);
  const norms = new Float64Array(t.nItems);
  for (let i = 0; i < t.nItems; i++) norms[i] = Math.sqrt(dot(t.items, i * d, t.items, i * d, d));
  const shuffled = Int32Array.from(fit);
  new Rng(seed + 7919).shuffle(shuffled);
  const folds: GridFold[] = [];
  for (let f = 0; f < NEIGHBOR_FOLDS; f++) {
    const h = f === 0 ? held : shuffled.slice((f - 1) * held.length, f * held.length).sort();
    if (h.length < held.length) break;
    const inFold = new Uint8Array(t.nItems);
    for (const r of h) inFold[r] = 1;
    const cands = all.filter((r) => !inFold[r]);
    const kMax = Math.min(Math.max(...NEIGHBOR_KS), cands.length);
    folds.push({ held: h, lists: neighborLists(keys, D, h, cands, kMax), kMax });
  }
  const y = new Float64Array(d);
  const place = (f: number, { k, tau, rescale }: GridCandidate): Float32Array => {
    const { held: h, lists, kMax } = folds[f];
    const enc = new Float32Array(h.length * d);
    const idx = Int32Array.from({ length: k }, (_, a) => a);
    for (let q = 0; q < h.length; q++) {
      const rows = lists.idx.subarray(q * kMax, q * kMax + k);
      weightedMean({ values: gatherRowsJs(t.items, d, rows), outDim: d, k, tau, rescale }, lists.sim.subarray(q * kMax, q * kMax + k), idx, Float64Array.from(rows, (r) => norms[r]), y);
      for (let c = 0; c < d; c++) enc[q * d + c] = y[c];
    }
    return enc;
  };
  const kMax = Math.min(...folds.map((f) => f.kMax));
  const candidates: GridCandidate[] = [];
  for (const k of NEIGHBOR_KS) {
    if (k > kMax) continue;
    for (const tau of NEIGHBOR_TAUS) for (const rescale of [false, true]) candidates.push({ k, tau, rescale });
  }
  return { keys, D, folds, candidates, place };
}

/**
 * The neighbors design: for every (K, τ, rescale) of the grid, the held-out rows of each fold are
 * placed from their K most similar rows outside the fold (an item never finds itself) and ranked;
 * the settings with the best overall valid Recall@20 (`criterion` new-items: the new-item recall),
 * averaged over the folds, are kept (ties: the other figure). Fold 0 is the split every design is validated on (its figures are the
 * design's validation); the others are further disjoint shares of the fit rows, of the same size.
 * Then the table holds every training item (fit + held) with those settings.
 */
function fitNeighbors(t: EncoderTargets, base: Pick<ItemEncoderWeights, 'modalities' | 'mean' | 'invStd'>, fit: Int32Array, held: Int32Array, all: Int32Array, ceiling: { recall: number; ndcg: number }, seed: number, criterion: ItemEncoderCriterion = 'overall') {
  const d = t.dim;
  const { keys, D, folds, candidates, place } = neighborGridSetup(t, base, fit, held, all, seed);
  const grid: NonNullable<FitReport['grid']> = [];
  let best: (typeof grid)[number] | null = null;
  // every candidate on every fold in one pass over the users (neighbor-grid.ts: ColdEvaluator's figures, bit for bit)
  const figures = evaluateNeighborGrid(t, folds, candidates, place);
  candidates.forEach(({ k, tau, rescale }, ci) => {
    const rs = figures[ci];
    const mean = (key: 'recall' | 'ndcg' | 'overallRecall') => rs.reduce((x, r) => x + r[key], 0) / rs.length;
    const g = { k, tau, rescale, recall: mean('recall'), ndcg: mean('ndcg'), overallRecall: mean('overallRecall'), folds: rs.length };
    grid.push(g);
    const [p, q] = criterion === 'overall' ? (['overallRecall', 'recall'] as const) : (['recall', 'overallRecall'] as const);
    if (!best || g[p] > best[p] || (g[p] === best[p] && g[q] > best[q])) best = g;
  });
  const b = best!;
  const enc = place(0, b);
  const v = withOverall(t, held, enc, validateEncoded(t, held, enc, ceiling));
  const neighbors: NeighborTable = {
    keys: Float32Array.from(gatherRows64(keys, D, all)),
    values: gatherRowsJs(t.items, d, all),
    n: all.length,
    keyDim: D,
    outDim: d,
    k: Math.min(b.k, all.length),
    tau: b.tau,
    rescale: b.rescale,
  };
  return { weights: { ...base, layers: [], neighbors }, validation: v, grid, chosen: { k: b.k, tau: b.tau, rescale: b.rescale } };
}

function gatherRows64(src: Float64Array, width: number, rows: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(src.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return out;
}

/** The layers with the last one's output multiplied by alpha. */
function scaled(layers: DenseLayer[], alpha: number): DenseLayer[] {
  const last = layers[layers.length - 1];
  return [...layers.slice(0, -1), { ...last, w: Float32Array.from(last.w, (x) => x * alpha), b: Float32Array.from(last.b, (x) => x * alpha) }];
}

/** The dense layers applied to the (already normalized) input rows. */
function encodeRows(x: Float32Array, width: number, layers: DenseLayer[], rows: Int32Array): Float32Array {
  const id: ItemEncoderWeights = { modalities: [{ name: 'x', dim: width }], mean: [new Float32Array(width)], invStd: [new Float32Array(width).fill(1)], layers };
  return encodeReference(id, [gatherRowsJs(x, width, rows)], rows.length);
}

/**
 * Fits one design: validation on a held-out share of the training items, then the chosen epochs
 * (or λ) refit on all training items. The weights include the normalization.
 */
export function fitItemEncoder(t: EncoderTargets, cfg: ItemEncoderConfig): FitReport {
  const t0 = performance.now();
  if (t.modalities.length === 0) throw new Error('the item encoder needs at least one modality');
  const norm = t.modalities.map((m) => normalization(m, t.nItems));
  const { x, width } = inputTable(t, norm);
  const { fit, held } = splitTrainingItems(t.itemPopularity, cfg.holdout, cfg.seed);
  if (fit.length < 2) throw new Error(`the item encoder needs training items: ${fit.length + held.length} items have train interactions`);
  const all = Int32Array.from([...fit, ...held]).sort();
  const isNew = new Uint8Array(t.nItems);
  for (const r of held) isNew[r] = 1;
  const c = rankNewItems(t.users, t.items, t.dim, t.nItems, t.valByUser, [t.trainByUser], isNew, 20);
  const ceiling = { recall: c.recall, ndcg: c.ndcg };
  const base = { modalities: t.modalities.map((m) => ({ name: m.name, dim: m.dim })), mean: norm.map((n) => n.mean), invStd: norm.map((n) => n.invStd) };
  if (cfg.design === 'neighbors') {
    const nb = fitNeighbors(t, base, fit, held, all, ceiling, cfg.seed, cfg.criterion);
    return { design: cfg.design, weights: nb.weights, validation: nb.validation, grid: nb.grid, neighbors: nb.chosen, curve: [], seconds: (performance.now() - t0) / 1000 };
  }
  const ev = new ColdEvaluator(t, held);
  const withScale = (layers: DenseLayer[], cal: { alpha: number; norm?: number }): Pick<ItemEncoderWeights, 'layers' | 'outputNorm'> =>
    cal.norm === undefined ? { layers: scaled(layers, cal.alpha) } : { layers, outputNorm: cal.norm };
  if (cfg.design === 'ridge') {
    let best: { lambda: number; cos: number; layer: DenseLayer } | null = null;
    const curve: FitReport['curve'] = [];
    for (const lambda of RIDGE_LAMBDAS) {
      const layer = fitRidge(x, width, t.items, t.dim, fit, lambda);
      const cos = heldCosine(t, held, encodeRows(x, width, [layer], held));
      curve.push({ epoch: lambda, recall: NaN, cosine: cos, loss: NaN });
      if (!best || cos > best.cos) best = { lambda, cos, layer };
    }
    const cal = calibrate(t, held, fit, encodeRows(x, width, [best!.layer], held), ceiling, ev, cfg.criterion);
    const layer = fitRidge(x, width, t.items, t.dim, all, best!.lambda);
    return { design: cfg.design, weights: { ...base, ...withScale([layer], cal) }, validation: cal.v, lambda: best!.lambda, outputScale: cal.alpha, ...(cal.norm !== undefined ? { outputNorm: cal.norm } : {}), curve, seconds: (performance.now() - t0) / 1000 };
  }
  const v = trainMlp(t, x, width, cfg, fit, held, cfg.epochs, ceiling);
  const cal = calibrate(t, held, fit, encodeRows(x, width, v.layers, held), ceiling, ev, cfg.criterion);
  const refit = trainMlp(t, x, width, cfg, all, null, v.epoch);
  return { design: cfg.design, weights: { ...base, ...withScale(refit.layers, cal) }, validation: cal.v, bestEpoch: v.epoch, outputScale: cal.alpha, ...(cal.norm !== undefined ? { outputNorm: cal.norm } : {}), curve: v.curve, seconds: (performance.now() - t0) / 1000 };
}
