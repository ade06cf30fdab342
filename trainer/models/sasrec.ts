/**
 * SASRec (Kang & McAuley, ICDM 2018), the sequential ID student: item + learned positional
 * embeddings, causal pre-LayerNorm self-attention blocks with a GELU feed-forward, a final
 * LayerNorm; the score of item r after a sequence is its last hidden state · item_emb[r]. The
 * forward pass is the one of the issue-19 contract (= ../shared/yardstick/sasrec_ref.py with the
 * padding row at nItems instead of 0): sequences are left-padded with row nItems and positions
 * are right-aligned, so a batch trimmed to its longest real sequence gives the same result.
 */
import { tf } from '../engine/backend.js';
import { gatherRows } from '../engine/gather-rows.js';
import { uniqueVarName } from '../engine/names.js';
import { Rng } from '../../core/rng.js';
import { requireArray, CheckpointError, type LoadedCheckpoint, type NamedArray } from '../checkpoint.js';
import type { SequenceBatch } from '../../data/sequences.js';
import { DEFAULT_LN_EPS, sequenceWeightShapes, type SequenceShape } from '../../repository/sasrec-weights.js';

/** The encoder's architecture: the repository's one definition, shared with sequence.onnx and the bundle check. */
export type SasRecShape = SequenceShape;

/** LayerNorm epsilon (PyTorch's default, biased variance), recorded in the checkpoint as `lnEps`. */
export const LN_EPS = DEFAULT_LN_EPS;
/** An attention logit that softmax turns into exactly 0 (exp underflows), as PyTorch's masked -inf. */
const BLOCKED = -1e9;

export interface SeqLossOptions {
  dropout: number;
  /** 'full': softmax over every item; 'sampled': over the target and `negatives` items drawn from `sampling` (log-Q corrected) */
  loss: 'full' | 'sampled';
  negatives: number;
}

/** Checks a shape before any weight is made: the error names the flag. */
export function checkSasRecShape(s: SasRecShape): void {
  if (s.dim % s.heads !== 0) throw new Error(`--seq-heads ${s.heads} must divide --dim ${s.dim}`);
  if (s.nItems < 1) throw new Error('a sequential model needs at least one item');
}

/**
 * PyTorch's initialisation of the yardstick, from our seeded RNG: embeddings N(0, 0.02²) (the
 * padding row 0), attention projections Xavier-uniform over the stacked [3d, d] in-projection with
 * zero biases, feed-forward layers U(±1/√fan_in) (weights and biases), LayerNorm γ 1, β 0.
 */
function initialValues(s: SasRecShape, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  const uniform = (n: number, bound: number) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * bound);
  for (const [name, shape] of sequenceWeightShapes(s)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const leaf = name.slice(name.lastIndexOf('.') + 1);
    let v: Float32Array;
    if (name === 'seq.item_emb' || name === 'seq.pos_emb') {
      v = Float32Array.from({ length: n }, () => rng.normal() * 0.02);
      if (name === 'seq.item_emb') v.fill(0, s.nItems * s.dim);
    } else if (/\.ln\d?\.g$/.test(name) || name === 'seq.ln.g') v = new Float32Array(n).fill(1);
    else if (name.includes('.attn.w') && leaf !== 'wo') v = uniform(n, Math.sqrt(6 / (s.dim + 3 * s.dim)));
    else if (leaf === 'wo') v = uniform(n, 1 / Math.sqrt(s.dim));
    else if (name.includes('.ffn.')) v = uniform(n, 1 / Math.sqrt(leaf === 'w2' || leaf === 'b2' ? s.ffDim : s.dim));
    else v = new Float32Array(n); // attention biases, LayerNorm β
    out.set(name, v);
  }
  return out;
}

export class SasRec {
  readonly variables: tf.Variable[];
  private readonly byName = new Map<string, tf.Variable>();
  /** cumulative sampling distribution of the sampled softmax (train popularity + 1), when set */
  private sampling: { cdf: Float64Array; logQ: Float32Array } | null = null;

  constructor(
    readonly shape: SasRecShape,
    init: { seed: number } | ReadonlyMap<string, Float32Array>,
  ) {
    checkSasRecShape(shape);
    const values = init instanceof Map ? init : initialValues(shape, (init as { seed: number }).seed);
    this.variables = sequenceWeightShapes(shape).map(([name, s]) => {
      const data = values.get(name);
      if (!data) throw new CheckpointError(`SASRec weight "${name}" missing`);
      const initial = tf.tensor(data, s, 'float32');
      const v = tf.variable(initial, true, uniqueVarName(name));
      initial.dispose(); // the variable holds its own reference to the values
      this.byName.set(name, v);
      return v;
    });
  }

  /** From a checkpoint's arrays (the contract's names and shapes). */
  static fromCheckpoint(ck: LoadedCheckpoint<unknown>, shape: SasRecShape): SasRec {
    const values = new Map<string, Float32Array>();
    for (const [name, s] of sequenceWeightShapes(shape)) values.set(name, requireArray(ck, name, s).data);
    return new SasRec(shape, values);
  }

  get parameters(): number {
    return this.variables.reduce((n, v) => n + v.size, 0);
  }

  private p(name: string): tf.Tensor {
    return this.byName.get(name)!;
  }

  /** The weights as checkpoint arrays (stable names). */
  arrays(): NamedArray[] {
    return sequenceWeightShapes(this.shape).map(([name, s]) => ({ name, shape: s, data: (this.p(name).dataSync() as Float32Array).slice() }));
  }

  /** Item rows 0..nItems-1 of the item table (the padding row left out), [nItems, dim]. */
  itemEmbeddings(): Float32Array {
    return (this.p('seq.item_emb').dataSync() as Float32Array).slice(0, this.shape.nItems * this.shape.dim);
  }

  /** Draws the sampled softmax's negatives in proportion to `counts` + 1 (each item's train popularity). */
  setSampling(counts: ArrayLike<number>): void {
    const n = this.shape.nItems;
    const cdf = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) cdf[i] = total += counts[i] + 1;
    const logQ = new Float32Array(n);
    for (let i = 0; i < n; i++) logQ[i] = Math.log((counts[i] + 1) / total);
    for (let i = 0; i < n; i++) cdf[i] /= total;
    this.sampling = { cdf, logQ };
  }

  /**
   * Hidden states after the final LayerNorm, [batch × width, dim], for left-padded rows; with
   * `drop`, the training pass (dropout where the yardstick's PyTorch layers apply it).
   */
  hidden(rows: Int32Array, batch: number, width: number, drop?: { rate: number; rng: Rng }, table?: tf.Tensor2D): tf.Tensor2D {
    const { dim: d, heads: H, maxLen, nItems } = this.shape;
    const B = batch;
    const L = width;
    if (rows.length !== B * L) throw new Error(`sasrec: ${rows.length} item rows, expected ${B}×${L}`);
    if (L < 1 || L > maxLen) throw new Error(`sasrec: sequence width ${L} outside 1..${maxLen}`);
    const dh = d / H;
    const dropout = <T extends tf.Tensor>(x: T): T => (drop && drop.rate > 0 ? (tf.mul(x, dropMask(x.shape, drop.rate, drop.rng)) as T) : x);
    const keep = new Float32Array(B * L);
    for (let i = 0; i < B * L; i++) keep[i] = rows[i] === nItems ? 0 : 1;
    let h = tf.mul(gatherRows(table ?? (this.p('seq.item_emb') as tf.Tensor2D), tf.tensor1d(rows, 'int32')), Math.sqrt(d));
    const pos = tf.slice(this.p('seq.pos_emb'), [maxLen - L, 0], [L, d]);
    h = tf.reshape(tf.add(tf.reshape(h, [B, L, d]), pos), [B * L, d]);
    h = tf.mul(dropout(h), tf.tensor2d(keep, [B * L, 1]));
    const bias = tf.tensor4d(attentionBias(rows, B, L, nItems), [B, 1, L, L]);
    const heads = (t: tf.Tensor): tf.Tensor4D => (H === 1 ? tf.reshape(t, [B, 1, L, d]) : tf.transpose(tf.reshape(t, [B, L, H, dh]), [0, 2, 1, 3]));
    for (let k = 0; k < this.shape.blocks; k++) {
      const b = `seq.b${k}`;
      const x = this.layerNorm(h, `${b}.ln1`);
      const q = heads(this.dense(x, `${b}.attn.wq`, `${b}.attn.bq`));
      const kk = heads(this.dense(x, `${b}.attn.wk`, `${b}.attn.bk`));
      const v = heads(this.dense(x, `${b}.attn.wv`, `${b}.attn.bv`));
      const scores = tf.add(tf.mul(tf.matMul(q, kk, false, true), 1 / Math.sqrt(dh)), bias);
      const ctx = tf.matMul(dropout(tf.softmax(scores)), v);
      const merged = H === 1 ? tf.reshape(ctx, [B * L, d]) : tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [B * L, d]);
      h = tf.add(h, dropout(this.dense(merged, `${b}.attn.wo`, `${b}.attn.bo`)));
      const y = this.layerNorm(h, `${b}.ln2`);
      const f = this.dense(dropout(gelu(this.dense(y, `${b}.ffn.w1`, `${b}.ffn.b1`))), `${b}.ffn.w2`, `${b}.ffn.b2`);
      h = tf.add(h, dropout(f));
    }
    return this.layerNorm(h, 'seq.ln') as tf.Tensor2D;
  }

  /** The user vectors: the last column's hidden state, batch × dim (evaluation mode); `table`: another item table (a distillation hook). */
  encodeLast(rows: Int32Array, batch: number, width: number, table?: tf.Tensor2D): Float32Array {
    const out = tf.tidy(() => {
      const h = this.hidden(rows, batch, width, undefined, table);
      return tf.reshape(tf.slice(tf.reshape(h, [batch, width, this.shape.dim]), [0, width - 1, 0], [batch, 1, this.shape.dim]), [batch, this.shape.dim]);
    });
    const v = (out.dataSync() as Float32Array).slice();
    out.dispose();
    return v;
  }

  /**
   * Mean next-item cross-entropy over the batch's real positions (every position of each training
   * prefix), full softmax over the items or sampled softmax with the log-Q correction.
   */
  loss(batch: SequenceBatch, o: SeqLossOptions, rng: Rng, itemTable?: tf.Tensor2D): tf.Scalar {
    const { dim: d, nItems } = this.shape;
    const table = itemTable ?? (this.p('seq.item_emb') as tf.Tensor2D);
    const { hm, tgt, at } = this.targetStates(batch, o.dropout, rng, itemTable);
    if (o.loss === 'full') return crossEntropy(tf.matMul(hm, tf.slice(table, [0, 0], [nItems, d]), false, true), Int32Array.from(tgt));
    const target = tf.sum(tf.mul(hm, gatherRows(table, tf.tensor1d(tgt, 'int32'))), 1);
    if (!this.sampling) throw new Error('sasrec: sampled softmax without a sampling distribution (setSampling)');
    const { cdf, logQ } = this.sampling;
    const S = o.negatives;
    const neg = new Int32Array(S);
    for (let j = 0; j < S; j++) neg[j] = drawFrom(cdf, rng.next());
    // log-Q correction on the target and the negatives; a negative equal to the row's target is removed
    const corr = new Float32Array(at.length * S);
    for (let r = 0; r < at.length; r++) for (let j = 0; j < S; j++) corr[r * S + j] = neg[j] === tgt[r] ? BLOCKED : -logQ[neg[j]];
    const negLogits = tf.add(tf.matMul(hm, gatherRows(table, tf.tensor1d(neg, 'int32')), false, true), tf.tensor2d(corr, [at.length, S]));
    const pos = tf.sub(target, tf.tensor1d(tgt.map((t) => logQ[t])));
    return crossEntropy(tf.concat([tf.reshape(pos, [at.length, 1]), negLogits], 1) as tf.Tensor2D, new Int32Array(at.length));
  }

  /**
   * The training pass's hidden states at the batch's target positions, [targets, dim], with the
   * targets (the distillation hooks: ODMT's logits, KDSR's pairs read the same batch).
   */
  targetStates(batch: SequenceBatch, dropout: number, rng: Rng, table?: tf.Tensor2D): { hm: tf.Tensor2D; tgt: number[]; at: number[] } {
    const h = this.hidden(batch.inputs, batch.batch, batch.width, { rate: dropout, rng }, table);
    const at: number[] = [];
    const tgt: number[] = [];
    for (let i = 0; i < batch.targets.length; i++) {
      if (batch.targets[i] !== this.shape.nItems) {
        at.push(i);
        tgt.push(batch.targets[i]);
      }
    }
    if (at.length === 0) throw new Error('sasrec: a batch without any target');
    return { hm: gatherRows(h, tf.tensor1d(at, 'int32')), tgt, at };
  }

  /** The item table variable, [nItems + 1, dim] (the padding row last). */
  get itemTable(): tf.Variable {
    return this.byName.get('seq.item_emb')!;
  }

  private dense(x: tf.Tensor, w: string, b: string): tf.Tensor2D {
    return tf.add(tf.matMul(x as tf.Tensor2D, this.p(w) as tf.Tensor2D), this.p(b));
  }

  /** LayerNorm over the last axis, biased variance, eps LN_EPS. */
  private layerNorm(x: tf.Tensor, prefix: string): tf.Tensor2D {
    const mean = tf.mean(x, -1, true);
    const c = tf.sub(x, mean);
    const variance = tf.mean(tf.square(c), -1, true);
    return tf.add(tf.mul(tf.mul(c, tf.rsqrt(tf.add(variance, LN_EPS))), this.p(`${prefix}.g`)), this.p(`${prefix}.b`));
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

/**
 * Mean softmax cross-entropy of rows of logits against target columns, with the gradient
 * (softmax − one-hot)/N written out: tf.logSumExp's own gradient goes through max's, whose Equal
 * on wasm took a third of the step (bench:profile --model sasrec).
 */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [n, c] = logits.shape;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const oneHot = tf.oneHot(tf.tensor1d(targets, 'int32'), c);
    save([x, oneHot]);
    const value = tf.div(tf.sub(tf.sum(tf.logSumExp(x, 1)), tf.sum(tf.mul(x, oneHot))), n) as tf.Scalar;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(tf.sub(tf.softmax(saved[0]), saved[1]), tf.div(dy, n))],
    };
  });
  return f(logits) as tf.Scalar;
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)) (PyTorch's `gelu`; wasm has Erf and tfjs its gradient). */
function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/**
 * The additive attention mask, [B, 1, L, L]: query j may attend key i iff i ≤ j and key i is
 * not padding, and always itself (so no row is empty).
 */
export function attentionBias(rows: Int32Array, B: number, L: number, pad: number): Float32Array {
  const out = new Float32Array(B * L * L);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < L; j++) {
      const off = (b * L + j) * L;
      for (let i = 0; i < L; i++) if (i !== j && (i > j || rows[b * L + i] === pad)) out[off + i] = BLOCKED;
    }
  }
  return out;
}

/** Inverted dropout: 0 with probability `rate`, else 1/(1−rate); from our seeded RNG, so runs repeat by --seed. */
export function dropMask(shape: number[], rate: number, rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const m = new Float32Array(n);
  const threshold = rate * 4294967296;
  const scale = 1 / (1 - rate);
  for (let i = 0; i < n; i++) if (rng.nextU32() >= threshold) m[i] = scale;
  return tf.tensor(m, shape);
}

/** The first index whose cumulative probability exceeds u. */
function drawFrom(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
