/**
 * PromptMM's soft prompt: p = P(mean_m η(x^m)), with η a fixed PCA of each modality's
 * features (computed once) and P a small feed-forward module. The modality-specific
 * prompt p^m maps p back to d_m through the transpose of that modality's PCA basis, so P
 * works in the shared reduced space and each modality gets a prompt in its own space.
 */
import { PCA } from 'ml-pca';
import { tf } from '../engine/backend.js';
import type { Modality } from '../../data/dataset.js';
import type { NamedArray } from '../checkpoint.js';
import { Rng } from '../../core/rng.js';
import { stableName, uniqueVarName } from '../engine/names.js';

/** PCA basis of one modality: features ≈ mean + scores · componentsᵀ. */
export interface PcaBasis {
  mean: Float32Array; // [d_m]
  components: Float32Array; // [d_m, r], row-major
  /** standard deviation of the scores, to put modalities on one scale */
  scale: Float32Array; // [r]
}

/** η for one modality: the top-r principal directions of its item features. */
export function fitPca(m: Modality, nItems: number, r: number): PcaBasis {
  const rows: number[][] = [];
  for (let i = 0; i < nItems; i++) rows.push(Array.from(m.data.subarray(i * m.dim, (i + 1) * m.dim)));
  const k = Math.min(r, m.dim);
  const pca = new PCA(rows, { method: 'covarianceMatrix', center: true, scale: false });
  const vectors = pca.getEigenvectors(); // d_m × d_m, columns are directions
  const stdevs = pca.getStandardDeviations();
  const components = new Float32Array(m.dim * r); // columns beyond k stay zero
  for (let a = 0; a < m.dim; a++) for (let c = 0; c < k; c++) components[a * r + c] = vectors.get(a, c);
  const mean = new Float32Array(m.dim);
  for (let i = 0; i < nItems; i++) for (let a = 0; a < m.dim; a++) mean[a] += m.data[i * m.dim + a] / nItems;
  const scale = new Float32Array(r).fill(1);
  for (let c = 0; c < k; c++) scale[c] = stdevs[c] > 1e-12 ? stdevs[c] : 1;
  return { mean, components, scale };
}

/** Standardised PCA scores of one modality, [nItems, r]. */
export function pcaScores(m: Modality, nItems: number, b: PcaBasis, r: number): Float32Array {
  const out = new Float32Array(nItems * r);
  for (let i = 0; i < nItems; i++) {
    for (let c = 0; c < r; c++) {
      let s = 0;
      for (let a = 0; a < m.dim; a++) s += (m.data[i * m.dim + a] - b.mean[a]) * b.components[a * r + c];
      out[i * r + c] = s / b.scale[c];
    }
  }
  return out;
}

export interface PromptConfig {
  /** r, the width of η and of P */
  dim: number;
  seed: number;
}

export class SoftPrompt {
  readonly w1: tf.Variable<tf.Rank.R2>;
  readonly b1: tf.Variable<tf.Rank.R1>;
  readonly w2: tf.Variable<tf.Rank.R2>;
  readonly b2: tf.Variable<tf.Rank.R1>;
  /** η: mean over modalities of the standardised PCA scores, [nItems, r] (fixed) */
  private readonly hard: tf.Tensor2D;
  /** per modality, the map back from r to d_m: componentsᵀ scaled by the score std, [r, d_m] (fixed) */
  private readonly back: tf.Tensor2D[];

  constructor(
    readonly r: number,
    hardTokens: Float32Array,
    nItems: number,
    bases: PcaBasis[],
    modalityDims: number[],
    init: { seed: number } | Map<string, NamedArray>,
  ) {
    this.hard = tf.tensor2d(hardTokens, [nItems, r]);
    this.back = bases.map((b, m) => {
      const d = modalityDims[m];
      const t = new Float32Array(r * d);
      for (let a = 0; a < d; a++) for (let c = 0; c < r; c++) t[c * d + a] = b.components[a * r + c] * b.scale[c];
      return tf.tensor2d(t, [r, d]);
    });
    const get = (name: string, shape: number[], fill: (rng: Rng) => Float32Array) => {
      if (init instanceof Map) {
        const a = init.get(name);
        if (!a || a.data.length !== shape.reduce((x, y) => x * y, 1)) throw new Error(`checkpoint lacks prompt weight ${name} of shape [${shape}]`);
        return a.data;
      }
      return fill(new Rng(init.seed + name.length * 31));
    };
    const glorot = (fanIn: number, fanOut: number) => (rng: Rng) => {
      const lim = Math.sqrt(6 / (fanIn + fanOut));
      return Float32Array.from({ length: fanIn * fanOut }, () => (rng.next() * 2 - 1) * lim);
    };
    const zeros = (n: number) => () => new Float32Array(n);
    this.w1 = tf.variable(tf.tensor2d(get('prompt/w1', [r, r], glorot(r, r)), [r, r]), true, uniqueVarName('prompt/w1'));
    this.b1 = tf.variable(tf.tensor1d(get('prompt/b1', [r], zeros(r))), true, uniqueVarName('prompt/b1'));
    this.w2 = tf.variable(tf.tensor2d(get('prompt/w2', [r, r], glorot(r, r)), [r, r]), true, uniqueVarName('prompt/w2'));
    this.b2 = tf.variable(tf.tensor1d(get('prompt/b2', [r], zeros(r))), true, uniqueVarName('prompt/b2'));
  }

  get variables(): tf.Variable[] {
    return [this.w1, this.b1, this.w2, this.b2];
  }

  get parameters(): number {
    return 2 * this.r * this.r + 2 * this.r;
  }

  /** p = P(η), [nItems, r]: the shared prompt before it is mapped to each modality. */
  shared(): tf.Tensor2D {
    const h = tf.leakyRelu(tf.add(tf.matMul(this.hard, this.w1), this.b1), 0.2) as tf.Tensor2D;
    return tf.add(tf.matMul(h, this.w2), this.b2) as tf.Tensor2D;
  }

  /** The map from p to p^m = p · back_m, [r, d_m]. */
  backMap(m: number): tf.Tensor2D {
    return this.back[m];
  }

  /** p^m for every modality, [nItems, d_m] each. */
  modalityPrompts(): tf.Tensor2D[] {
    const p = this.shared();
    return this.back.map((b) => tf.matMul(p, b));
  }

  arrays(): NamedArray[] {
    return this.variables.map((v) => ({ name: stableName(v.name), shape: v.shape, data: (v.dataSync() as Float32Array).slice() }));
  }

  dispose(): void {
    tf.dispose([...this.variables, this.hard, ...this.back]);
  }
}
