/**
 * KDSR's student side (Hu, Liu, Li, Kan, ECIR 2024; code github HoldenHu/KDSR): the ID-only
 * SASRec's item embeddings learn to carry the modalities' item-pair correlations
 * (kdsr-teacher.ts), L = L_rec + λ1·L_holistic + λ2·L_dissected, per modality:
 *
 * - holistic: s_ij = cos(W e_i + b, W e_j + b) (a linear map per modality) against the teacher's
 *   r_ij = cos(m_i, m_j); `soft` match: squared error of s/τ and r/τ (the code's
 *   `calculate_teach_cor_loss`, averaged over pairs instead of a per-sequence Frobenius norm);
 *   `hard` match: squared error of s against ±1, +1 for the partners whose teacher correlation is
 *   at least the anchor's median;
 * - dissected: the pair's code predicted from |e_i − e_j| through Linear–ReLU–Linear, cross-entropy
 *   (`student_predict_corcodes_logits`).
 *
 * Pairs: per batch `anchors` item positions drawn from the batch's windows, each with `partners`
 * partners, half drawn from the anchor's own window (the code's in-sequence pairs) and half uniform
 * over the catalog (the code has only in-sequence pairs; the uniform half shows the student the
 * low end of the correlation range and items that rarely share a sequence, at a fixed cost).
 * The deviation from the code: the supervision is on the ID embeddings (the served table), where
 * the code puts it on modality embedding tables initialised from the features.
 */
import { tf } from '../engine/backend.js';
import { gatherRows } from '../engine/gather-rows.js';
import { uniqueVarName } from '../engine/names.js';
import { Rng } from '../../core/rng.js';
import type { NamedArray } from '../checkpoint.js';
import type { SequenceBatch } from '../../data/sequences.js';
import { crossEntropy } from './sasrec.js';
import type { KdsrTeacher } from './kdsr-teacher.js';

export interface KdsrOptions {
  holisticWeight: number;
  dissectedWeight: number;
  tau: number;
  match: 'soft' | 'hard';
  anchors: number;
  partners: number;
  holistic: boolean;
  dissected: boolean;
  /** η, or 0 for no asynchronous step */
  asyncEpochs: number;
}

/** The item embeddings' learning-rate multiple in a (1-based) epoch: 0.1 rising linearly to 1 over η epochs. */
export function asyncScale(epoch: number, eta: number): number {
  if (eta <= 0) return 1;
  return Math.min(1, 0.1 + (0.9 * (epoch - 1)) / eta);
}

/** The anchor/partner item rows of one batch, [A] and [A × K]. */
export interface PairSample {
  anchors: Int32Array;
  partners: Int32Array;
  A: number;
  K: number;
}

/**
 * Draws the pairs of a batch: anchors uniformly over the batch's item positions (inputs and the
 * final target of each window), K/2 partners from the anchor's own window (another position;
 * with replacement) and K − K/2 uniform over the catalog.
 */
export function samplePairs(batch: SequenceBatch, pad: number, A: number, K: number, rng: Rng): PairSample {
  const { inputs, targets, width } = batch;
  const rowItems: number[][] = [];
  const positions: [number, number][] = [];
  for (let r = 0; r < batch.batch; r++) {
    const items: number[] = [];
    for (let c = 0; c < width; c++) if (inputs[r * width + c] !== pad) items.push(inputs[r * width + c]);
    const last = targets[(r + 1) * width - 1];
    if (last !== pad) items.push(last);
    rowItems.push(items);
    if (items.length >= 2) for (let k = 0; k < items.length; k++) positions.push([r, k]);
  }
  if (positions.length === 0) throw new Error('kdsr: a batch without a window of two items');
  const anchors = new Int32Array(A);
  const partners = new Int32Array(A * K);
  const own = K >> 1;
  for (let a = 0; a < A; a++) {
    const [r, k] = positions[rng.int(positions.length)];
    const items = rowItems[r];
    anchors[a] = items[k];
    for (let p = 0; p < own; p++) {
      let q = rng.int(items.length - 1);
      if (q >= k) q++;
      partners[a * K + p] = items[q];
    }
    for (let p = own; p < K; p++) partners[a * K + p] = rng.int(pad);
  }
  return { anchors, partners, A, K };
}

interface Head {
  hw: tf.Variable;
  hb: tf.Variable;
  w1: tf.Variable;
  b1: tf.Variable;
  w2: tf.Variable;
  b2: tf.Variable;
}

export class KdsrLoss {
  readonly variables: tf.Variable[] = [];
  private readonly heads: Head[];
  private readonly names = new Map<tf.Variable, string>();
  private last: Record<string, number> = {};

  constructor(
    readonly teacher: KdsrTeacher,
    readonly dim: number,
    readonly o: KdsrOptions,
    seed: number,
    init?: ReadonlyMap<string, Float32Array>,
  ) {
    const rng = new Rng(seed * 31 + 5);
    const codes = teacher.opts.codes;
    const d = dim;
    this.heads = teacher.modalities.map((m) => {
      const mk = (leaf: string, shape: number[], fill: 'normal' | 'zero' | 'eye') => {
        const name = `kdsr.${m.name}.${leaf}`;
        const n = shape.reduce((x, y) => x * y, 1);
        let v = init?.get(name);
        if (v && v.length !== n) throw new Error(`kdsr: checkpoint array ${name} has ${v.length} values, expected ${n}`);
        if (!v) {
          v = new Float32Array(n);
          // the code's init: weights N(0, 0.02²), biases 0; the holistic map starts at the identity (cos of the embeddings themselves)
          if (fill === 'normal') for (let t = 0; t < n; t++) v[t] = rng.normal() * 0.02;
          if (fill === 'eye') for (let t = 0; t < d; t++) v[t * d + t] = 1;
        }
        const t = tf.tensor(v, shape, 'float32');
        const variable = tf.variable(t, true, uniqueVarName(name));
        t.dispose();
        this.variables.push(variable);
        this.names.set(variable, name);
        return variable;
      };
      return {
        hw: mk('hol.w', [d, d], 'eye'),
        hb: mk('hol.b', [d], 'zero'),
        w1: mk('dis.w1', [d, d], 'normal'),
        b1: mk('dis.b1', [d], 'zero'),
        w2: mk('dis.w2', [d, codes], 'normal'),
        b2: mk('dis.b2', [codes], 'zero'),
      };
    });
  }

  /** λ1·L_holistic + λ2·L_dissected over the modalities, for the pairs of one batch; `table` the [nItems + 1, dim] item embeddings. */
  loss(table: tf.Tensor2D, pairs: PairSample): tf.Scalar {
    const { A, K } = pairs;
    const t = this.teacher;
    const ea = gatherRows(table, tf.tensor1d(pairs.anchors, 'int32')); // [A, d]
    const ep = gatherRows(table, tf.tensor1d(pairs.partners, 'int32')); // [A*K, d]
    const eaRep = tf.reshape(tf.tile(tf.reshape(ea, [A, 1, this.dim]), [1, K, 1]), [A * K, this.dim]);
    let total: tf.Scalar = tf.scalar(0);
    const terms: Record<string, number> = {};
    const parts: { name: string; v: tf.Scalar }[] = [];
    this.heads.forEach((h, m) => {
      const name = t.modalities[m].name;
      if (this.o.holistic && this.o.holisticWeight > 0) {
        const r = new Float32Array(A * K);
        for (let a = 0; a < A; a++) for (let p = 0; p < K; p++) r[a * K + p] = t.holistic(m, pairs.anchors[a], pairs.partners[a * K + p]);
        const za = unitRows(tf.add(tf.matMul(eaRep, h.hw as tf.Tensor2D), h.hb));
        const zp = unitRows(tf.add(tf.matMul(ep, h.hw as tf.Tensor2D), h.hb));
        const s = tf.sum(tf.mul(za, zp), 1);
        let target: Float32Array;
        let student: tf.Tensor = s;
        if (this.o.match === 'soft') {
          target = r.map((x) => x / this.o.tau);
          student = tf.div(s, this.o.tau);
        } else {
          target = hardTargets(r, A, K);
        }
        const v = tf.mean(tf.square(tf.sub(student, tf.tensor1d(target)))) as tf.Scalar;
        parts.push({ name: `holistic.${name}`, v });
        total = tf.add(total, tf.mul(v, this.o.holisticWeight));
      }
      if (this.o.dissected && this.o.dissectedWeight > 0) {
        const codes = new Int32Array(A * K);
        for (let a = 0; a < A; a++) for (let p = 0; p < K; p++) codes[a * K + p] = t.code(m, pairs.anchors[a], pairs.partners[a * K + p]);
        const diff = tf.abs(tf.sub(eaRep, ep)) as tf.Tensor2D;
        const hid = tf.relu(tf.add(tf.matMul(diff, h.w1 as tf.Tensor2D), h.b1)) as tf.Tensor2D;
        const logits = tf.add(tf.matMul(hid, h.w2 as tf.Tensor2D), h.b2) as tf.Tensor2D;
        const v = crossEntropy(logits, codes);
        parts.push({ name: `dissected.${name}`, v });
        total = tf.add(total, tf.mul(v, this.o.dissectedWeight));
      }
    });
    // the terms for the logs (read after the step; small scalars)
    this.last = terms;
    for (const p of parts) terms[p.name] = p.v.dataSync()[0];
    return total;
  }

  lossTerms(): Record<string, number> {
    return this.last;
  }

  arrays(): NamedArray[] {
    return this.variables.map((v) => ({ name: this.names.get(v)!, shape: v.shape, data: (v.dataSync() as Float32Array).slice() }));
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

/** Rows scaled to unit length (a zero row stays 0). */
function unitRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12))) as tf.Tensor2D;
}

/** +1 for the partners whose teacher correlation is at least the anchor's median, −1 for the others. */
export function hardTargets(r: Float32Array, A: number, K: number): Float32Array {
  const out = new Float32Array(A * K);
  for (let a = 0; a < A; a++) {
    const row = Array.from(r.subarray(a * K, (a + 1) * K)).sort((x, y) => x - y);
    const med = row[(K - 1) >> 1];
    for (let p = 0; p < K; p++) out[a * K + p] = r[a * K + p] >= med ? 1 : -1;
  }
  return out;
}
