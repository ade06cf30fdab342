/**
 * The PromptMM teacher (stage 1): ID embeddings and one feature reduction per modality, each
 * propagated over the user-item graph; its loss, and stage 2's forward pass where only the prompt moves.
 *
 * f^m = dropout((x^m + λ1·p^m) W^m + b^m) on the standardised features x^m with the soft prompt
 * p^m (prompt.ts), computed without forming p^m; F^m = LightGCN propagation of [users' mean of
 * f^m over their train items; f^m]; E^T = propagated ID embeddings + modalMix·Σ_m F^m/‖F^m‖.
 * Loss: BPR on E^T + modalWeight·Σ_m BPR on F^m (each modality ranks on its own: ListKD reads
 * F_u^m·F_i^m) + L2 on the batch's ID rows.
 */
import { tf } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import { csrMatMul, csrTensor, disposeCsr, type CsrTensor } from '../engine/csr-matmul.js';
import { gatherRows } from '../engine/gather-rows.js';
import type { NormalizedGraph } from '../../data/graph.js';
import { bprFromEmbeddings, propagateMean, tripletRows } from './lightgcn.js';
import type { Triplets } from '../../data/sampler.js';
import type { NamedArray } from '../checkpoint.js';
import { SoftPrompt, fitPca, pcaScores, type PcaBasis } from './prompt.js';
import { Rng } from '../../core/rng.js';
import { stableName, uniqueVarName } from '../engine/names.js';

export interface TeacherShape {
  dim: number;
  layers: number;
  dropout: number;
  /** λ1: rate of the prompt added to the raw features */
  promptRate: number;
  /** r: width of η (PCA) and of the prompt module */
  promptDim: number;
  /** false: no soft prompt at all (ablation) */
  prompt: boolean;
  /** weight of the (row-normalised) modality representations in E^T */
  modalMix: number;
}

export interface TeacherOutputs {
  /** E^T, [N, d] */
  final: tf.Tensor2D;
  /** F^m per modality, [N, d] each */
  modal: tf.Tensor2D[];
}

export class Teacher {
  readonly ego: tf.Variable<tf.Rank.R2>;
  readonly w: tf.Variable<tf.Rank.R2>[];
  readonly b: tf.Variable<tf.Rank.R1>[];
  readonly prompt: SoftPrompt | null;
  readonly modalities: string[];
  private readonly x: tf.Tensor2D[];
  private readonly adj: CsrTensor;
  /** users × items, row u = 1/deg(u) on u's train items: the user side of F^m */
  private readonly userMean: CsrTensor;
  private readonly nUsers: number;
  private readonly nItems: number;
  private dropSeed: number;
  /** the prompt's PCA bases per modality (saved with the weights) */
  private readonly bases: PcaBasis[];

  constructor(
    data: Dataset,
    graph: NormalizedGraph,
    readonly shape: TeacherShape,
    init: { seed: number } | Map<string, NamedArray>,
  ) {
    if (data.modalities.length === 0) throw new Error('the teacher needs at least one modality (<name>_feat.npy)');
    this.nUsers = data.nUsers;
    this.nItems = data.nItems;
    this.modalities = data.modalities.map((m) => m.name);
    const n = data.nUsers + data.nItems;
    const d = shape.dim;
    const fromCk = init instanceof Map ? init : null;
    const seed = init instanceof Map ? 0 : init.seed;
    const rng = new Rng(seed + 101);
    const take = (name: string, size: number, fill: () => number): Float32Array => {
      if (fromCk) {
        const a = fromCk.get(name);
        if (!a || a.data.length !== size) throw new Error(`teacher checkpoint lacks ${name} (${size} values)`);
        return a.data;
      }
      return Float32Array.from({ length: size }, fill);
    };
    this.ego = tf.variable(tf.tensor2d(take('teacher/ego', n * d, () => rng.normal() * 0.1), [n, d]), true, uniqueVarName('teacher/ego'));
    this.w = data.modalities.map((m) => {
      const lim = Math.sqrt(6 / (m.dim + d));
      return tf.variable(tf.tensor2d(take(`teacher/${m.name}/w`, m.dim * d, () => (rng.next() * 2 - 1) * lim), [m.dim, d]), true, uniqueVarName(`teacher/${m.name}/w`));
    });
    this.b = data.modalities.map((m) => tf.variable(tf.tensor1d(take(`teacher/${m.name}/b`, d, () => 0)), true, uniqueVarName(`teacher/${m.name}/b`)));
    this.x = data.modalities.map((m) => tf.tensor2d(standardize(m.data, data.nItems, m.dim), [data.nItems, m.dim]));
    this.adj = csrTensor(n, n, graph.indptr, graph.indices, graph.values);
    this.userMean = userMeanMatrix(data);
    this.dropSeed = seed * 7 + 1;
    if (shape.prompt) {
      // η is fixed: the PCA bases come from the checkpoint when it has them (a PCA of wide
      // features takes long: stage 2 would redo stage 1's), else they are fitted (deterministic);
      // the standardised mean score is recomputed; the module P's weights come from the checkpoint if any.
      const r = shape.promptDim;
      const bases: PcaBasis[] = data.modalities.map((m) => (fromCk && savedBasis(fromCk, m.name, m.dim, r)) || fitPca(m, data.nItems, r));
      this.bases = bases;
      const hard = new Float32Array(data.nItems * r);
      data.modalities.forEach((m, k) => {
        const s = pcaScores(m, data.nItems, bases[k], r);
        for (let i = 0; i < s.length; i++) hard[i] += s[i] / data.modalities.length;
      });
      this.prompt = new SoftPrompt(r, hard, data.nItems, bases, data.modalities.map((m) => m.dim), fromCk ?? { seed: seed + 7 });
    } else {
      this.prompt = null;
      this.bases = [];
    }
  }

  /** Weights trained in stage 1 (the prompt's are listed separately). */
  get ownVariables(): tf.Variable[] {
    return [this.ego, ...this.w, ...this.b];
  }

  get variables(): tf.Variable[] {
    return [...this.ownVariables, ...(this.prompt?.variables ?? [])];
  }

  get parameters(): number {
    return this.variables.reduce((s, v) => s + v.size, 0);
  }

  /**
   * f^m for each modality, [nItems, d]. (x + λ1·p·B_m)·W = x·W + λ1·p·(B_m·W): the same
   * value without ever forming the [nItems, d_m] prompt, which makes the step several
   * times cheaper for wide features.
   */
  private reduced(training: boolean): tf.Tensor2D[] {
    const p = this.prompt && this.shape.promptRate > 0 ? this.prompt.shared() : null;
    return this.x.map((x, m) => {
      let f = tf.add(tf.matMul(x, this.w[m]), this.b[m]) as tf.Tensor2D;
      if (p) f = tf.add(f, tf.mul(tf.matMul(p, tf.matMul(this.prompt!.backMap(m), this.w[m])), this.shape.promptRate));
      if (training && this.shape.dropout > 0) f = tf.dropout(f, this.shape.dropout, undefined, this.dropSeed++) as tf.Tensor2D;
      return f;
    });
  }

  /** Layer-0 modality representations over all nodes: users' mean over their items, then items'. */
  private modalLayer0(f: tf.Tensor2D): tf.Tensor2D {
    return tf.concat([csrMatMul(this.userMean, f), f], 0);
  }

  /** Mean over layers 0..L of Â^l·h (LightGCN's propagation, at the teacher's depth). */
  private propagate(h0: tf.Tensor2D): tf.Tensor2D {
    return propagateMean(this.adj, h0, this.shape.layers);
  }

  /** E^T and every F^m. */
  forward(training: boolean): TeacherOutputs {
    return this.forwardParts(training);
  }

  /** E^T, every F^m and the propagated ID part they were mixed into (CKD reads a modality's branch: ID part + mix·F^m/‖F^m‖). */
  forwardParts(training: boolean): TeacherOutputs & { id: tf.Tensor2D } {
    const id = this.propagate(this.ego);
    return { ...this.combine(id, this.reduced(training)), id };
  }

  /** Only the modality part (what the prompt changes), given the propagated ID part. */
  forwardModal(idPart: tf.Tensor2D): TeacherOutputs {
    return this.combine(idPart, this.reduced(false));
  }

  /**
   * F^m = propagated [users' mean; f^m]; E^T = ID part + mix·Σ_m F^m/‖F^m‖ (row-normalised,
   * so that no modality's scale swamps the ID signal).
   */
  private combine(idPart: tf.Tensor2D, reduced: tf.Tensor2D[]): TeacherOutputs {
    return this.mix(idPart, reduced.map((f) => this.propagate(this.modalLayer0(f))));
  }

  private mix(idPart: tf.Tensor2D, modal: tf.Tensor2D[]): TeacherOutputs {
    const mix = this.shape.modalMix;
    const final = mix > 0 ? (modal.reduce((acc, f) => tf.add(acc, tf.mul(rowNormalize(f), mix)), idPart) as tf.Tensor2D) : idPart;
    return { final, modal };
  }

  /**
   * Stage 2's teacher: everything but the prompt is frozen and there is no dropout, and
   * both the user mean and the propagation are linear in f^m, so
   *   F^m = Prop(L0(x^m W^m + b^m)) + λ1 · Prop(L0(p)) · (C_mᵀ W^m):
   * the first term is computed once, and each step propagates only the prompt p (one
   * [N, r] matrix shared by all modalities). Returns the per-step forward pass; its
   * tensors are kept until `dispose` of the returned handle. Given `rows`, the outputs hold
   * only those rows (in that order): a step reads a few thousand of them, and everything after
   * the propagation of p is row-wise, so the rest is never formed.
   */
  frozenForStage2(idPart: tf.Tensor2D): { forward: (rows?: tf.Tensor1D) => TeacherOutputs; dispose: () => void } {
    const kept: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor>(t: T): T => {
      kept.push(tf.keep(t));
      return t;
    };
    const fixed = tf.tidy(() =>
      this.x.map((x, m) => keep(this.propagate(this.modalLayer0(tf.add(tf.matMul(x, this.w[m]), this.b[m]) as tf.Tensor2D)))),
    );
    const prompt = this.prompt && this.shape.promptRate > 0 ? this.prompt : null;
    const maps = prompt ? tf.tidy(() => this.w.map((w, m) => keep(tf.mul(tf.matMul(prompt.backMap(m), w), this.shape.promptRate)))) : [];
    const forward = (rows?: tf.Tensor1D): TeacherOutputs => {
      const at = (x: tf.Tensor2D) => (rows ? gatherRows(x, rows) : x);
      if (!prompt) return this.mix(at(idPart), fixed.map(at));
      const q = at(this.propagate(this.modalLayer0(prompt.shared())));
      return this.mix(at(idPart), fixed.map((f, m) => tf.add(at(f), tf.matMul(q, maps[m])) as tf.Tensor2D));
    };
    return { forward, dispose: () => tf.dispose(kept) };
  }

  /** The propagated ID part alone (fixed in stage 2). */
  idPart(): tf.Tensor2D {
    return tf.tidy(() => this.propagate(this.ego));
  }

  /**
   * BPR on E^T + modalWeight · Σ_m BPR on F^m + L2 on the batch's ID rows; `extra` adds terms
   * computed from the same forward pass (CKD's distillation, trainer/models/ckd.ts), each with weight 1.
   */
  loss(
    t: Triplets,
    reg: number,
    modalWeight: number,
    extra?: (out: TeacherOutputs & { id: tf.Tensor2D }) => Record<string, tf.Scalar>,
  ): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const out = this.forwardParts(true);
    const idx = tripletRows(t, this.nUsers);
    const rows = gatherRows(out.final, idx);
    const [u, p, n] = tf.split(rows, 3, 0) as tf.Tensor2D[];
    const ego = gatherRows(this.ego, idx);
    const main = bprFromEmbeddings({ users: u, pos: p, neg: n, ego }, reg, t.users.length);
    let total: tf.Scalar = main;
    const terms: Record<string, tf.Scalar> = { bpr: main };
    if (modalWeight > 0) {
      out.modal.forEach((f, m) => {
        const [mu, mp, mn] = tf.split(gatherRows(f, idx), 3, 0) as tf.Tensor2D[];
        const x = tf.sum(tf.mul(mu, tf.sub(mp, mn)), 1);
        const l = tf.mean(tf.softplus(tf.neg(x))) as tf.Scalar;
        terms[`bpr_${this.modalities[m]}`] = l;
        total = tf.add(total, tf.mul(l, modalWeight));
      });
    }
    if (extra) {
      for (const [k, v] of Object.entries(extra(out))) {
        terms[k] = v;
        total = tf.add(total, v);
      }
    }
    return { total, terms };
  }

  /** E^T in evaluation mode (no dropout), [N, d]. */
  embeddings(): Float32Array {
    return tf.tidy(() => {
      const out = this.forward(false);
      return (out.final.dataSync() as Float32Array).slice();
    });
  }

  arrays(): NamedArray[] {
    const own = this.ownVariables.map((v) => ({ name: stableName(v.name), shape: v.shape, data: (v.dataSync() as Float32Array).slice() }));
    const pca = this.bases.flatMap((b, k) => {
      const m = this.modalities[k];
      const dm = b.mean.length;
      return [
        { name: `pca/${m}/mean`, shape: [dm], data: b.mean.slice() },
        { name: `pca/${m}/components`, shape: [dm, b.scale.length], data: b.components.slice() },
        { name: `pca/${m}/scale`, shape: [b.scale.length], data: b.scale.slice() },
      ];
    });
    return [...own, ...(this.prompt?.arrays() ?? []), ...pca];
  }

  dispose(): void {
    tf.dispose([...this.ownVariables, ...this.x]);
    this.prompt?.dispose();
    disposeCsr(this.adj);
    disposeCsr(this.userMean);
  }
}

/** A modality's PCA basis as a checkpoint holds it, or null when absent (older checkpoints) or of another shape. */
function savedBasis(ck: Map<string, NamedArray>, name: string, dm: number, r: number): PcaBasis | null {
  const mean = ck.get(`pca/${name}/mean`);
  const components = ck.get(`pca/${name}/components`);
  const scale = ck.get(`pca/${name}/scale`);
  if (!mean || !components || !scale || mean.data.length !== dm || components.data.length !== dm * r || scale.data.length !== r) return null;
  return { mean: mean.data, components: components.data, scale: scale.data };
}

export function rowNormalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12)));
}

/** Column z-scores: raw features come in any offset and scale (Tiktok's visual ones average 2.7). */
function standardize(data: Float32Array, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let c = 0; c < dim; c++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += data[r * dim + c];
    mean /= rows;
    let v = 0;
    for (let r = 0; r < rows; r++) v += (data[r * dim + c] - mean) ** 2;
    const sd = Math.sqrt(v / rows) || 1;
    for (let r = 0; r < rows; r++) out[r * dim + c] = (data[r * dim + c] - mean) / sd;
  }
  return out;
}

function userMeanMatrix(data: Dataset): CsrTensor {
  const { indptr, indices } = data.trainByUser;
  const values = new Float32Array(indices.length);
  for (let u = 0; u < data.nUsers; u++) {
    const deg = indptr[u + 1] - indptr[u];
    for (let k = indptr[u]; k < indptr[u + 1]; k++) values[k] = 1 / deg;
  }
  return csrTensor(data.nUsers, data.nItems, indptr, indices, values);
}
