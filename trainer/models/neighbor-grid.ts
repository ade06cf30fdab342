/**
 * The neighbors design's validation grid, scored in one pass over the users (issue 24): for every
 * fold and every (K, τ, rescale) candidate, the figures ColdEvaluator.evaluate(placed vectors)
 * gives — the same numbers to the last bit — at a small part of its cost.
 *
 * ColdEvaluator.evaluate scores every held-out row for every valid user (a 64-d dot product per
 * row, per user, per candidate: 60 candidates × 5 folds on Tiktok, ~90 s), although a held-out row
 * can only reach a user's top k when its score reaches the k-th score among the items that stay
 * (θ). A placed row is a weighted mean of its neighbours' student vectors, so its score is
 * (nearly) the same weighted mean of the neighbours' scores, which every user needs once: one row
 * u·v_i over the catalog, shared by all folds and candidates, and for a given τ the weights' running
 * sums give every K at once. That estimate only screens: a row whose estimate is below θ by more
 * than a safe margin (the float32 rounding of the placed vectors, 6e-8 relative, is far inside
 * it) cannot enter the top k and is skipped; the others are scored exactly as evaluate() scores
 * them (the same dot product, rounded to float32), then ranked and merged as evaluate() does.
 */
import type { Csr } from '../../core/csr.js';
import { topK } from '../../core/topk.js';

/** What the grid reads of the encoder's targets (EncoderTargets has these). */
export interface GridTargets {
  nItems: number;
  nUsers: number;
  dim: number;
  /** the student's final item vectors, [nItems, dim] */
  items: Float32Array;
  /** the student's final user vectors, [nUsers, dim] */
  users: Float32Array;
  trainByUser: Csr;
  valByUser: Csr;
}

/** A fold: its held-out rows and each row's kMax nearest rows outside it (best first) with their similarities. */
export interface GridFold {
  held: Int32Array;
  lists: { idx: Int32Array; sim: Float64Array };
  kMax: number;
}

export interface GridCandidate {
  k: number;
  tau: number;
  rescale: boolean;
}

export interface GridFigures {
  recall: number;
  ndcg: number;
  overallRecall: number;
}

/** Relative margin of the screen (the float32 rounding it must absorb is 6e-8). */
const SCREEN_MARGIN = 1e-5;

function lastK0(ks: number[]): number {
  return ks.length ? ks[ks.length - 1] : 0;
}

/** a[ao..ao+n) · b[bo..bo+n), summed in index order. */
export function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += a[ao + j] * b[bo + j];
  return s;
}

/**
 * out[i] = a[ao..ao+d) · items[i·d..(i+1)·d) for every item: four items at a time, each sum in the
 * order dot() adds (the same doubles, so rankings equal those of a dot() per item), fewer loads.
 */
export function scoreRow(a: Float32Array, ao: number, items: Float32Array, nItems: number, d: number, out: Float64Array | Float32Array): void {
  let i = 0;
  for (; i + 4 <= nItems; i += 4) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    const o0 = i * d;
    const o1 = o0 + d;
    const o2 = o1 + d;
    const o3 = o2 + d;
    for (let j = 0; j < d; j++) {
      const x = a[ao + j];
      s0 += x * items[o0 + j];
      s1 += x * items[o1 + j];
      s2 += x * items[o2 + j];
      s3 += x * items[o3 + j];
    }
    out[i] = s0;
    out[i + 1] = s1;
    out[i + 2] = s2;
    out[i + 3] = s3;
  }
  for (; i < nItems; i++) out[i] = dot(a, ao, items, i * d, d);
}

/**
 * figures[c][f]: candidate c on fold f, as `new ColdEvaluator(t, folds[f].held, k).evaluate(place(f, c))`.
 * `place` gives the held-out rows' vectors ([held.length, dim]) of a candidate, as the table would.
 */
export function evaluateNeighborGrid(t: GridTargets, folds: GridFold[], cands: GridCandidate[], place: (fold: number, c: GridCandidate) => Float32Array, k = 20): GridFigures[][] {
  const { nItems, dim: d, valByUser: val, trainByUser: train } = t;
  // the K values the candidates use, ascending: the running sums stop at each
  const ks = [...new Set(cands.map((c) => c.k))].sort((a, b) => a - b);
  const taus = [...new Set(cands.map((c) => c.tau))];
  let maxItemNorm = 0;
  for (let i = 0; i < nItems; i++) maxItemNorm = Math.max(maxItemNorm, Math.sqrt(dot(t.items, i * d, t.items, i * d, d)));

  // Per fold, everything that does not depend on the user.
  const prep = folds.map((fold, f) => {
    const { held, lists, kMax } = fold;
    const nh = held.length;
    const isHeld = new Int32Array(nItems).fill(-1);
    held.forEach((r, h) => (isHeld[r] = h));
    for (const kk of ks) if (kk > kMax) throw new Error(`neighbor grid: K ${kk} > the fold's ${kMax} neighbours`);
    // softmax numerators exp((sim_a − sim_0)/τ) and their sums at each K, as weightedMean forms them
    const ew = taus.map((tau) => {
      const e = new Float64Array(nh * kMax);
      const z = ks.map(() => new Float64Array(nh));
      for (let h = 0; h < nh; h++) {
        const top = lists.sim[h * kMax];
        let s = 0;
        let j = 0;
        for (let a = 0; a < kMax; a++) {
          s += e[h * kMax + a] = Math.exp((lists.sim[h * kMax + a] - top) / tau);
          while (j < ks.length && ks[j] === a + 1) z[j++][h] = s;
        }
      }
      return { e, z };
    });
    const enc = cands.map((c) => place(f, c));
    const encNorm = enc.map((x) => Float64Array.from({ length: nh }, (_, h) => Math.sqrt(dot(x, h * d, x, h * d, d))));
    // a rescaled candidate's factor on the plain weighted mean (its norm over the plain one's); Infinity: never screened out
    const factor = cands.map((c, ci) => {
      if (!c.rescale) return null;
      const plain = cands.findIndex((p) => p.k === c.k && p.tau === c.tau && !p.rescale);
      return Float64Array.from({ length: nh }, (_, h) => (plain >= 0 && encNorm[plain][h] > 0 ? encNorm[ci][h] / encNorm[plain][h] : Infinity));
    });
    // the screen of candidate c keeps row h when est·fac + ‖u‖·mrg ≥ θ − SCREEN_MARGIN·|θ| − 1e-9·‖u‖·max‖v‖ (est: the plain weighted mean's estimate)
    const fac = cands.map((c, ci) => factor[ci] ?? new Float64Array(nh).fill(1));
    const mrg = encNorm.map((x) => x.map((v) => SCREEN_MARGIN * v));
    // per row, over every candidate: the largest norm and the range of the rescale factors (1: not rescaled), for the first screen
    const maxNorm = Float64Array.from({ length: nh }, (_, h) => Math.max(...encNorm.map((x) => x[h])));
    const fMax = Float64Array.from({ length: nh }, (_, h) => Math.max(1, ...factor.map((x) => (x ? x[h] : 1))));
    const fMin = Float64Array.from({ length: nh }, (_, h) => Math.min(1, ...factor.map((x) => (x ? x[h] : 1))));
    return { held, lists, kMax, nh, isHeld, ew, enc, fac, mrg, maxNorm, fMax, fMin };
  });

  const sums = cands.map(() => folds.map(() => ({ rec: 0, nd: 0, nNew: 0, overall: 0 })));
  const srow = new Float64Array(nItems);
  const scores = new Float32Array(nItems);
  const top = new Int32Array(k);
  const oldItem = new Int32Array(k);
  const oldScore = new Float32Array(k);
  const maxHeld = Math.max(0, ...prep.map((p) => p.nh));
  const approx = ks.map(() => new Float64Array(maxHeld));
  const masked = new Uint8Array(maxHeld);
  const gathered = new Float64Array(maxHeld * lastK0(ks));
  const alive = new Int32Array(maxHeld);
  const lastK = ks[ks.length - 1];
  const survivor = new Int32Array(maxHeld);
  const survScore = new Float32Array(maxHeld);
  const order = new Int32Array(k);
  const want = new Set<number>();
  for (let u = 0; u < t.nUsers; u++) {
    const nVal = val.indptr[u + 1] - val.indptr[u];
    if (nVal === 0) continue;
    const uo = u * d;
    scoreRow(t.users, uo, t.items, nItems, d, srow);
    const uNorm = Math.sqrt(dot(t.users, uo, t.users, uo, d));
    want.clear();
    for (let p = val.indptr[u]; p < val.indptr[u + 1]; p++) want.add(val.indices[p]);
    prep.forEach((P, f) => {
      // the items that stay: the user's top k among them, as ColdEvaluator's constructor ranks them
      for (let i = 0; i < nItems; i++) scores[i] = P.isHeld[i] >= 0 ? -Infinity : srow[i];
      for (let p = train.indptr[u]; p < train.indptr[u + 1]; p++) scores[train.indices[p]] = -Infinity;
      const oldCount = topK(scores, 0, nItems, k, top);
      for (let r = 0; r < oldCount; r++) {
        oldItem[r] = top[r];
        oldScore[r] = scores[top[r]];
      }
      const theta = oldCount === k ? oldScore[k - 1] : -Infinity;
      masked.fill(0, 0, P.nh);
      for (let p = train.indptr[u]; p < train.indptr[u + 1]; p++) {
        const h = P.isHeld[train.indices[p]];
        if (h >= 0) masked[h] = 1;
      }
      let wantNew = 0;
      for (let p = val.indptr[u]; p < val.indptr[u + 1]; p++) if (P.isHeld[val.indices[p]] >= 0) wantNew++;
      // first screen, for every candidate at once: a weighted mean of the neighbours' scores is at most
      // the best of them, and a rescale multiplies it by a factor within [fMin, fMax]
      let nAlive = 0;
      for (let h = 0; h < P.nh; h++) {
        if (masked[h]) continue;
        // the neighbours' scores, gathered once for the τ loops below
        let m = -Infinity;
        const base = h * P.kMax;
        const go = h * lastK;
        for (let a = 0; a < lastK; a++) m = Math.max(m, (gathered[go + a] = srow[P.lists.idx[base + a]]));
        if (theta !== -Infinity && P.fMax[h] !== Infinity) {
          const bound = m >= 0 ? m * P.fMax[h] : m * P.fMin[h];
          if (bound < theta - (SCREEN_MARGIN * (uNorm * P.maxNorm[h] + Math.abs(theta)) + 1e-9 * uNorm * maxItemNorm)) continue;
        }
        alive[nAlive++] = h;
      }
      const screenAt = theta === -Infinity ? -Infinity : theta - SCREEN_MARGIN * Math.abs(theta) - 1e-9 * uNorm * maxItemNorm;
      taus.forEach((tau, ti) => {
        const { e, z } = P.ew[ti];
        // the estimate of every held row's score at every K: running weighted sums of its neighbours' scores
        if (theta !== -Infinity) {
          for (let q = 0; q < nAlive; q++) {
            const h = alive[q];
            let s = 0;
            let j = 0;
            const base = h * P.kMax;
            const go = h * lastK;
            for (let a = 0; a < lastK; a++) {
              s += e[base + a] * gathered[go + a];
              while (j < ks.length && ks[j] === a + 1) {
                approx[j][h] = s / z[j][h];
                j++;
              }
            }
          }
        }
        cands.forEach((c, ci) => {
          if (c.tau !== tau) return;
          const kj = ks.indexOf(c.k);
          const enc = P.enc[ci];
          const fac = P.fac[ci];
          const mrg = P.mrg[ci];
          const est = approx[kj];
          // the rows that may reach the top k, scored exactly (as evaluate() does), in row order
          let n = 0;
          for (let q = 0; q < nAlive; q++) {
            const h = alive[q];
            // (an Infinity factor never screens a row out: Infinity·est is not below the threshold, or is NaN)
            if (est[h] * fac[h] + uNorm * mrg[h] < screenAt && fac[h] !== Infinity) continue;
            const s = dot(t.users, uo, enc, h * d, d);
            survScore[n] = s;
            if (survScore[n] === -Infinity || survScore[n] !== survScore[n]) continue;
            survivor[n++] = h;
          }
          const got = topK(survScore, 0, n, k, order);
          // merged with the old top k (ties: the lower item first), as evaluate() merges
          let a = 0;
          let b = 0;
          let hits = 0;
          let newHits = 0;
          let dcg = 0;
          for (let r = 0; r < k && (a < oldCount || b < got); r++) {
            const hb = b < got ? survivor[order[b]] : -1;
            const takeOld = b >= got || (a < oldCount && (oldScore[a] > survScore[order[b]] || (oldScore[a] === survScore[order[b]] && oldItem[a] < P.held[hb])));
            const it = takeOld ? oldItem[a++] : P.held[survivor[order[b++]]];
            if (!want.has(it)) continue;
            hits++;
            if (P.isHeld[it] >= 0) {
              newHits++;
              dcg += 1 / Math.log2(r + 2);
            }
          }
          const acc = sums[ci][f];
          acc.overall += hits / nVal;
          if (wantNew > 0) {
            let idcg = 0;
            for (let r = 0; r < Math.min(k, wantNew); r++) idcg += 1 / Math.log2(r + 2);
            acc.rec += newHits / wantNew;
            acc.nd += dcg / idcg;
            acc.nNew++;
          }
        });
      });
    });
  }
  let users = 0;
  for (let u = 0; u < t.nUsers; u++) if (val.indptr[u + 1] > val.indptr[u]) users++;
  return sums.map((row) => row.map((s) => ({ recall: s.nNew ? s.rec / s.nNew : 0, ndcg: s.nNew ? s.nd / s.nNew : 0, overallRecall: users ? s.overall / users : 0 })));
}
