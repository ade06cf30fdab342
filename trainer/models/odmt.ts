/**
 * ODMT (Ji et al., "Online Distillation-enhanced Multi-modal Transformer for Sequential
 * Recommendation", ACM MM 2023; code github xyliugo/ODMT, model/model.py and modules.py):
 *
 * - the ID-aware multimodal transformer (IMT): per item, its ID embedding and each modality's
 *   projected (column-standardised) feature are tokens of a post-LayerNorm transformer
 *   (`MergedAttentionFusion`); with the IMT mask the ID token attends the modality tokens but no
 *   modality token attends the ID token (the code's `cut == "v1"`); each output token goes through
 *   its own Linear–LeakyReLU–Linear (`id_dnns`, `t_dnns`, `v_dnns`): one item table per input type;
 * - one SASRec per input type on its item table (branch 0, the ID branch, is the served student:
 *   its weights are the checkpoint's `seq.*`, its `seq.item_emb` the ID table, so export and serving
 *   are the plain student's);
 * - each branch's next-item cross-entropy (the full softmax, as the plain student; the code's
 *   in-batch debiased softmax is what `--seq-loss sampled` does for large catalogs, not offered
 *   here) plus online distillation: each branch learns T²·CE(softmax(mean of the other branches'
 *   logits / T), softmax(own / T)), the target held fixed, weighted by the sigmoid ramp-up
 *   exp(−5(1 − e/α)²). (The code: the modality branches learn from the ID branch and the ID branch
 *   from the mean of all three, gradients through both sides; the issue asks for each branch
 *   against the ensemble of the others.)
 */
import { tf } from '../engine/backend.js';
import { uniqueVarName } from '../engine/names.js';
import { Rng } from '../../core/rng.js';
import type { NamedArray } from '../checkpoint.js';
import type { Dataset } from '../../data/dataset.js';
import type { SequenceBatch } from '../../data/sequences.js';
import type { Metrics, Split } from '../eval.js';
import { evaluateWithUsers } from '../eval.js';
import { encodeUsers, splitInputs, evaluateSequentialWithUsers, type SequenceEncoder } from '../sequential-eval.js';
import { SasRec, crossEntropy, dropMask, type SasRecShape } from './sasrec.js';

export interface OdmtOptions {
  seed: number;
  seqDropout: number;
  odmtTemperature: number;
  odmtRampup: number;
  odmtLayers: number;
  odmtInit: 'random' | 'features';
  imtMask: boolean;
  onlineKd: boolean;
}

const BLOCKED = -1e9;
const IMT_LN_EPS = 1e-6;

/** The code's `sigmoid_rampup`: exp(−5(1 − e/α)²) for e in [0, α], 1 after; α 0: 1. */
export function sigmoidRampup(epoch: number, length: number): number {
  if (length <= 0) return 1;
  const e = Math.min(Math.max(epoch, 0), length);
  const phase = 1 - e / length;
  return Math.exp(-5 * phase * phase);
}

/** The IMT's additive mask over [id, modality…] tokens: with `imt`, modality queries do not attend the ID key. */
export function imtMaskValues(tokens: number, imt: boolean): Float32Array {
  const m = new Float32Array(tokens * tokens);
  if (imt) for (let q = 1; q < tokens; q++) m[q * tokens] = BLOCKED;
  return m;
}

/** T²·mean over rows of CE(q, softmax(z/T)), gradient T·(softmax(z/T) − q)/n to z only (the target q is held fixed). */
export function softCrossEntropy(z: tf.Tensor2D, q: tf.Tensor2D, T: number): tf.Scalar {
  const n = z.shape[0];
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor;
    const target = args[1] as tf.Tensor;
    const save = args[2] as tf.GradSaveFunc;
    const zs = tf.div(x, T);
    save([zs, target]);
    const value = tf.mul(tf.div(tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(zs)))), n), T * T) as tf.Scalar;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(tf.sub(tf.softmax(saved[0]), saved[1]), tf.mul(dy, T / n)), tf.zerosLike(saved[1])],
    };
  });
  return f(z, q) as tf.Scalar;
}

export class Odmt {
  readonly variables: tf.Variable[] = [];
  private readonly named = new Map<string, tf.Variable>();
  /** branch 0: the ID branch (the served SASRec); then one per modality */
  readonly branches: { name: string; sas: SasRec }[];
  private readonly feats: tf.Tensor2D[];
  private readonly mask: tf.Tensor2D;
  private readonly n: number;
  private readonly d: number;
  private last: Record<string, number> = {};

  constructor(
    data: Dataset,
    idModel: SasRec,
    readonly o: OdmtOptions,
    init?: ReadonlyMap<string, Float32Array>,
  ) {
    this.n = data.nItems;
    this.d = idModel.shape.dim;
    const { n, d } = this;
    const rng = new Rng(o.seed * 17 + 3);
    const mods = data.modalities;
    // features standardised per column (a modality's scale does not set its projection's)
    this.feats = mods.map((m) => tf.tensor2d(standardise(m.data, n, m.dim), [n, m.dim]));
    const uniform = (size: number, bound: number) => Float32Array.from({ length: size }, () => (rng.next() * 2 - 1) * bound);
    const mk = (name: string, shape: number[], v: Float32Array) => {
      const given = init?.get(name);
      if (given && given.length !== v.length) throw new Error(`odmt: checkpoint array ${name} has ${given.length} values, expected ${v.length}`);
      const t = tf.tensor(given ?? v, shape, 'float32');
      const variable = tf.variable(t, true, uniqueVarName(name));
      t.dispose();
      this.variables.push(variable);
      this.named.set(name, variable);
      return variable;
    };
    const linear = (name: string, fanIn: number, fanOut: number, bias = true) => {
      mk(`${name}.w`, [fanIn, fanOut], uniform(fanIn * fanOut, 1 / Math.sqrt(fanIn)));
      if (bias) mk(`${name}.b`, [fanOut], uniform(fanOut, 1 / Math.sqrt(fanIn)));
    };
    mods.forEach((m) => linear(`odmt.${m.name}.proj`, m.dim, d));
    linear('odmt.id.proj', d, d);
    for (let k = 0; k < o.odmtLayers; k++) {
      const b = `odmt.imt.b${k}`;
      for (const w of ['wq', 'wk', 'wv', 'wo']) linear(`${b}.${w}`, d, d, false);
      mk(`${b}.ln1.g`, [d], new Float32Array(d).fill(1));
      mk(`${b}.ln1.b`, [d], new Float32Array(d));
      linear(`${b}.ffn1`, d, 4 * d);
      linear(`${b}.ffn2`, 4 * d, d);
      mk(`${b}.ln2.g`, [d], new Float32Array(d).fill(1));
      mk(`${b}.ln2.b`, [d], new Float32Array(d));
    }
    const names = ['id', ...mods.map((m) => m.name)];
    for (const b of names) {
      linear(`odmt.${b}.dnn1`, d, d);
      linear(`odmt.${b}.dnn2`, d, d);
    }
    // ID embeddings: Xavier-normal (the code's init 0), or the mean of the projected features (init 1)
    let idInit: Float32Array = Float32Array.from({ length: n * d }, () => rng.normal() * Math.sqrt(2 / (n + d)));
    if (o.odmtInit === 'features' && !init?.has('odmt.id_emb')) {
      idInit = tf.tidy(() => {
        let s: tf.Tensor = tf.zeros([n, d]);
        mods.forEach((m, k) => (s = tf.add(s, this.dense(this.feats[k], `odmt.${m.name}.proj`))));
        return tf.div(s, mods.length).dataSync() as Float32Array;
      });
    }
    mk('odmt.id_emb', [n, d], idInit);
    // one SASRec per input type: the ID branch is the served student (its own item table unused)
    const shape: SasRecShape = idModel.shape;
    this.branches = names.map((name, k) => {
      if (k === 0) return { name, sas: idModel };
      const prefix = `odmt.${name}/`;
      const values = init && init.has(`${prefix}seq.pos_emb`) ? new Map([...init].filter(([key]) => key.startsWith(prefix)).map(([key, v]) => [key.slice(prefix.length), v])) : undefined;
      return { name, sas: new SasRec(shape, values ?? { seed: o.seed + 101 * k }) };
    });
    for (const { sas } of this.branches) for (const v of sas.variables) if (v !== sas.itemTable) this.variables.push(v);
    this.mask = tf.tensor2d(imtMaskValues(1 + mods.length, o.imtMask), [1 + mods.length, 1 + mods.length]);
  }

  private p(name: string): tf.Variable {
    const v = this.named.get(name);
    if (!v) throw new Error(`odmt: no variable ${name}`);
    return v;
  }

  private dense(x: tf.Tensor2D, name: string, bias = true): tf.Tensor2D {
    const y = tf.matMul(x, this.p(`${name}.w`) as tf.Tensor as tf.Tensor2D) as tf.Tensor2D;
    return bias ? (tf.add(y, this.p(`${name}.b`)) as tf.Tensor as tf.Tensor2D) : y;
  }

  private ln(x: tf.Tensor2D, prefix: string): tf.Tensor2D {
    return this.lnAny(x, prefix) as tf.Tensor2D;
  }

  private lnAny(x: tf.Tensor, prefix: string): tf.Tensor {
    const mean = tf.mean(x, -1, true);
    const c = tf.sub(x, mean);
    const variance = tf.mean(tf.square(c), -1, true);
    return tf.add(tf.mul(tf.mul(c, tf.rsqrt(tf.add(variance, IMT_LN_EPS))), this.p(`${prefix}.g`)), this.p(`${prefix}.b`));
  }

  /** Each branch's item table, [nItems + 1, dim] (the padding row, zeros, last); `drop`: the training pass. */
  itemTables(drop?: { rate: number; rng: Rng }): tf.Tensor2D[] {
    const { n, d } = this;
    const T = this.branches.length;
    const dropout = (x: tf.Tensor2D): tf.Tensor2D => (drop && drop.rate > 0 ? (tf.mul(x, dropMask(x.shape, drop.rate, drop.rng)) as tf.Tensor2D) : x);
    const tokens = [this.dense(this.p('odmt.id_emb') as tf.Tensor as tf.Tensor2D, 'odmt.id.proj'), ...this.branches.slice(1).map((b, k) => this.dense(this.feats[k], `odmt.${b.name}.proj`))];
    // [n, T, d] as rows n·T (item-major)
    let x: tf.Tensor2D = dropout(tf.reshape(tf.stack(tokens, 1), [n * T, d]) as tf.Tensor2D);
    for (let k = 0; k < this.o.odmtLayers; k++) {
      const b = `odmt.imt.b${k}`;
      const q = tf.reshape(this.dense(x, `${b}.wq`, false), [n, T, d]);
      const kk = tf.reshape(this.dense(x, `${b}.wk`, false), [n, T, d]);
      const v = tf.reshape(this.dense(x, `${b}.wv`, false), [n, T, d]);
      const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, kk, false, true), 1 / Math.sqrt(d)), this.mask));
      const ctx = tf.reshape(tf.matMul(dropout3(att, drop), v), [n * T, d]) as tf.Tensor2D;
      x = this.ln(tf.add(x, dropout(this.dense(ctx, `${b}.wo`, false))) as tf.Tensor2D, `${b}.ln1`);
      const f = this.dense(tf.relu(this.dense(x, `${b}.ffn1`)) as tf.Tensor2D, `${b}.ffn2`) as tf.Tensor2D;
      x = this.ln(tf.add(x, dropout(f)) as tf.Tensor2D, `${b}.ln2`);
    }
    const out = tf.unstack(tf.reshape(x, [n, T, d]), 1) as tf.Tensor2D[];
    const pad = tf.zeros([1, d]);
    return this.branches.map((br, k) => {
      const h = tf.leakyRelu(this.dense(out[k], `odmt.${br.name}.dnn1`), 0.01) as tf.Tensor2D;
      return tf.concat([this.dense(h, `odmt.${br.name}.dnn2`), pad], 0) as tf.Tensor2D;
    });
  }

  /** Σ_b CE_b + w(epoch)·Σ_b KD_b over the batch's target positions. */
  loss(batch: SequenceBatch, epoch: number, rng: Rng): tf.Scalar {
    const tables = this.itemTables({ rate: this.o.seqDropout, rng });
    const logits: tf.Tensor2D[] = [];
    let tgt: number[] = [];
    let total: tf.Scalar = tf.scalar(0);
    const terms: Record<string, number> = {};
    const parts: [string, tf.Scalar][] = [];
    this.branches.forEach((b, k) => {
      const s = b.sas.targetStates(batch, this.o.seqDropout, rng, tables[k]);
      tgt = s.tgt;
      const z = tf.matMul(s.hm, tf.slice(tables[k], [0, 0], [this.n, this.d]), false, true) as tf.Tensor2D;
      logits.push(z);
      const ce = crossEntropy(z, Int32Array.from(tgt));
      parts.push([`ce.${b.name}`, ce]);
      total = tf.add(total, ce);
    });
    const w = this.o.onlineKd && this.branches.length > 1 ? sigmoidRampup(epoch, this.o.odmtRampup) : 0;
    if (w > 0) {
      const T = this.o.odmtTemperature;
      const sum = tf.addN(logits);
      this.branches.forEach((b, k) => {
        const others = tf.div(tf.sub(sum, logits[k]), logits.length - 1);
        const q = tf.softmax(tf.div(others, T)) as tf.Tensor2D;
        const kd = softCrossEntropy(logits[k], q, T);
        parts.push([`kd.${b.name}`, kd]);
        total = tf.add(total, tf.mul(kd, w));
      });
    }
    for (const [name, v] of parts) terms[name] = v.dataSync()[0];
    terms.kdWeight = w;
    this.last = terms;
    return total;
  }

  lossTerms(): Record<string, number> {
    return this.last;
  }

  /**
   * The trained model as a frozen teacher (`--odmt-student distilled`): each branch's item table
   * in evaluation mode, computed once; `logits(batch)`: the ensemble's logits (the mean of the
   * branches', the fused score) at the batch's target positions in targetStates' order, no dropout.
   */
  frozen(): { logits(batch: SequenceBatch): tf.Tensor2D; dispose(): void } {
    const { n, d } = this;
    const tables = tf.tidy(() => this.itemTables());
    const items = tables.map((t) => tf.slice(t, [0, 0], [n, d]));
    const noDropout = new Rng(0);
    return {
      logits: (batch) =>
        tf.tidy(() => {
          const zs = this.branches.map((b, k) => tf.matMul(b.sas.targetStates(batch, 0, noDropout, tables[k]).hm, items[k], false, true));
          return tf.div(tf.addN(zs), zs.length) as tf.Tensor2D;
        }),
      dispose: () => [...tables, ...items].forEach((t) => t.dispose()),
    };
  }

  /** Runs `fn` with branch k's encoder in evaluation mode (its item table computed once). */
  withEncoder<T>(k: number, fn: (enc: SequenceEncoder) => T): T {
    const table = tf.tidy(() => {
      const all = this.itemTables();
      return all[k];
    });
    try {
      const sas = this.branches[k].sas;
      const data = (table.dataSync() as Float32Array).slice(0, this.n * this.d);
      const enc: SequenceEncoder = { shape: sas.shape, encodeLast: (rows, b, w) => sas.encodeLast(rows, b, w, table), itemEmbeddings: () => data };
      return fn(enc);
    } finally {
      table.dispose();
    }
  }

  /** The branch names a dump or a report can ask for: each input type's, and `ensemble`. */
  branchNames(): string[] {
    return [...this.branches.map((b) => b.name), 'ensemble'];
  }

  /**
   * User vectors (the encodings of `split`'s inputs: zeros for a user without one) and item
   * vectors of one branch, or of the ensemble: the mean of the branches' logits, which is the
   * dot product of the concatenated user vectors over the branch count with the concatenated
   * item vectors (dim × branches), as the ODMT code scores its fused predictions.
   */
  splitVectors(data: Dataset, split: Split, branch: string, users?: readonly number[]): { users: Float32Array; items: Float32Array; dim: number } {
    const inputs = splitInputs(data, split);
    const who = users ?? Array.from({ length: data.nUsers }, (_, u) => u);
    const k = this.branches.findIndex((b) => b.name === branch);
    if (k >= 0) return this.withEncoder(k, (enc) => ({ users: encodeUsers(enc, inputs, who), items: enc.itemEmbeddings().slice(), dim: this.d }));
    if (branch !== 'ensemble') throw new Error(`odmt: no branch "${branch}" (${this.branchNames().join(', ')})`);
    const B = this.branches.length;
    const { d } = this;
    const U = new Float32Array(data.nUsers * d * B);
    const I = new Float32Array(this.n * d * B);
    this.branches.forEach((_br, k) => {
      this.withEncoder(k, (enc) => {
        const u = encodeUsers(enc, inputs, who);
        const it = enc.itemEmbeddings();
        for (let r = 0; r < data.nUsers; r++) for (let c = 0; c < d; c++) U[r * d * B + k * d + c] = u[r * d + c] / B;
        for (let r = 0; r < this.n; r++) for (let c = 0; c < d; c++) I[r * d * B + k * d + c] = it[r * d + c];
      });
    });
    return { users: U, items: I, dim: d * B };
  }

  /**
   * Validation metrics of every branch and of the ensemble, for the summary: whether serving
   * another branch or the ensemble would pay.
   */
  branchReportFor(data: Dataset, ks: number[]): Record<string, Metrics> {
    const out: Record<string, Metrics> = {};
    const truth = data.valByUser;
    const users: number[] = [];
    for (let u = 0; u < data.nUsers; u++) if (truth.indptr[u + 1] > truth.indptr[u]) users.push(u);
    this.branches.forEach((br, k) => {
      out[br.name] = this.withEncoder(k, (enc) => evaluateSequentialWithUsers(enc, data, { split: 'val', ks }).metrics);
    });
    const e = this.splitVectors(data, 'val', 'ensemble', users);
    out.ensemble = evaluateWithUsers(e.users, e.items, e.dim, data, { split: 'val', ks }).metrics;
    return out;
  }

  private reportData: Dataset | null = null;
  bindReport(data: Dataset): this {
    this.reportData = data;
    return this;
  }

  branchReport(ks: number[]): Record<string, Metrics> | undefined {
    return this.reportData ? this.branchReportFor(this.reportData, ks) : undefined;
  }

  /** The served student's arrays (`seq.*`, its item table the ID branch's) and every ODMT array (`odmt.*`). */
  arrays(): NamedArray[] {
    const id = this.branches[0].sas.arrays();
    const table = tf.tidy(() => this.itemTables()[0]);
    const tableData = (table.dataSync() as Float32Array).slice();
    table.dispose();
    const served = id.map((a) => (a.name === 'seq.item_emb' ? { ...a, data: tableData } : a));
    const own = [...this.named].map(([name, v]) => ({ name, shape: v.shape, data: (v.dataSync() as Float32Array).slice() }));
    const others = this.branches.slice(1).flatMap((b) => b.sas.arrays().map((a) => ({ ...a, name: `odmt.${b.name}/${a.name}` })));
    return [...served, ...own, ...others];
  }

  dispose(): void {
    for (const [, v] of this.named) v.dispose();
    for (const b of this.branches.slice(1)) b.sas.dispose();
    for (const f of this.feats) f.dispose();
    this.mask.dispose();
  }
}

function dropout3(x: tf.Tensor, drop?: { rate: number; rng: Rng }): tf.Tensor {
  return drop && drop.rate > 0 ? tf.mul(x, dropMask(x.shape, drop.rate, drop.rng)) : x;
}

/** Columns to mean 0, standard deviation 1 (a constant column to 0). */
function standardise(x: Float32Array, n: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let c = 0; c < dim; c++) {
    let s = 0;
    for (let r = 0; r < n; r++) s += x[r * dim + c];
    const mean = s / n;
    let v = 0;
    for (let r = 0; r < n; r++) v += (x[r * dim + c] - mean) ** 2;
    const sd = Math.sqrt(v / n);
    for (let r = 0; r < n; r++) out[r * dim + c] = sd > 0 ? (x[r * dim + c] - mean) / sd : 0;
  }
  return out;
}
