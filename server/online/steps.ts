/**
 * The vector updates of online learning, in place on a served version's tables: the BPR step
 * (the user's vector alone, or the user's and both items'), the graph step, negative sampling.
 */
import type { Rng } from '../../core/rng.js';
import type { ServingModel } from '../serving/serving-model.js';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The item side of a BPR step: scratch for the user's gradient, and the summed step lengths per item row. */
export interface ItemSteps {
  grad: Float32Array;
  moved: Float32Array;
}

/**
 * One SGD step on -log σ(u·(i − j)) + reg‖u‖² for user `row`, positive `item`, negative `neg`.
 * Item vectors stay fixed unless `items` is given: then i and j take their step too (with
 * reg‖i‖², reg‖j‖², from the user's vector before its step) and their step lengths are added
 * to `items.moved`.
 */
export function bprStep(m: ServingModel, row: number, item: number, neg: number, lr: number, reg: number, items?: ItemSteps): void {
  const d = m.dim;
  const U = m.userVectors;
  const I = m.itemVectors;
  const ub = row * d;
  const ib = item * d;
  const jb = neg * d;
  let x = 0;
  for (let c = 0; c < d; c++) x += U[ub + c] * (I[ib + c] - I[jb + c]);
  const g = 1 - sigmoid(x);
  const grad = items?.grad;
  if (grad) for (let c = 0; c < d; c++) grad[c] = g * U[ub + c];
  for (let c = 0; c < d; c++) U[ub + c] += lr * (g * (I[ib + c] - I[jb + c]) - reg * U[ub + c]);
  if (!items || !grad) return;
  let si = 0;
  let sj = 0;
  for (let c = 0; c < d; c++) {
    const di = lr * (grad[c] - reg * I[ib + c]);
    const dj = lr * (-grad[c] - reg * I[jb + c]);
    I[ib + c] += di;
    I[jb + c] += dj;
    si += di * di;
    sj += dj * dj;
  }
  items.moved[item] += Math.sqrt(si);
  items.moved[neg] += Math.sqrt(sj);
}

/**
 * A dislike (issue 18): one SGD step on -log σ(-u·i) + reg‖u‖² for user `row` and the disliked
 * `item` (item vectors fixed): the user's vector moves away from the item, by more the higher the
 * item still scores.
 */
export function dislikeStep(m: ServingModel, row: number, item: number, lr: number, reg: number): void {
  const d = m.dim;
  const U = m.userVectors;
  const I = m.itemVectors;
  const ub = row * d;
  const ib = item * d;
  let x = 0;
  for (let c = 0; c < d; c++) x += U[ub + c] * I[ib + c];
  const g = sigmoid(x);
  for (let c = 0; c < d; c++) U[ub + c] -= lr * (g * I[ib + c] + reg * U[ub + c]);
}

/** The graph step of OnlineConfig.mix: the user moves toward the new item by mix/√(n+1), keeping its norm. */
export function graphStep(m: ServingModel, row: number, item: number, mix: number): void {
  if (mix <= 0) return;
  const d = m.dim;
  const u = m.userVectors;
  const I = m.itemVectors;
  let nu = 0;
  let ni = 0;
  for (let c = 0; c < d; c++) {
    nu += u[row * d + c] ** 2;
    ni += I[item * d + c] ** 2;
  }
  nu = Math.sqrt(nu);
  ni = Math.sqrt(ni) || 1;
  const w = mix / Math.sqrt(m.seenCount(row));
  let nn = 0;
  for (let c = 0; c < d; c++) {
    u[row * d + c] += w * (nu / ni) * I[item * d + c];
    nn += u[row * d + c] ** 2;
  }
  const scale = nu / (Math.sqrt(nn) || 1);
  for (let c = 0; c < d; c++) u[row * d + c] *= scale;
}

/** A random item the user has not seen (20 tries; then any item). */
export function sampleNegative(m: ServingModel, row: number, rng: Rng): number {
  for (let t = 0; t < 20; t++) {
    const j = rng.int(m.nItems);
    if (!m.isSeen(row, j)) return j;
  }
  return rng.int(m.nItems);
}
