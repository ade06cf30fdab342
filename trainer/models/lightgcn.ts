/**
 * LightGCN (He et al., SIGIR 2020): ego ID embeddings propagated L times over the
 * normalised user-item graph, final embedding = mean of the L+1 layer outputs,
 * trained with BPR and L2 on the batch's ego embeddings.
 */
import { tf } from '../engine/backend.js';
import { csrTensor, disposeCsr, type CsrTensor } from '../engine/csr-matmul.js';
import { propagateMean } from '../engine/propagate.js';
import { gatherRows } from '../engine/gather-rows.js';
import type { NormalizedGraph } from '../../data/graph.js';
import type { Triplets } from '../../data/sampler.js';
import { Rng } from '../../core/rng.js';
import { uniqueVarName } from '../engine/names.js';
import { requireArray, type LoadedCheckpoint, type NamedArray } from '../checkpoint.js';
import { normalizedAdjacency } from '../../data/graph.js';
import type { Dataset } from '../../data/dataset.js';
import type { StudentKind, StudentModel } from './student-model.js';

/** Name of the ego table, in tfjs and in checkpoints (the student's one weight). */
export const LIGHTGCN_EGO = 'lightgcn/ego';

export interface LightGcnShape {
  nUsers: number;
  nItems: number;
  dim: number;
  layers: number;
}

export interface BatchEmbeddings {
  users: tf.Tensor2D;
  pos: tf.Tensor2D;
  neg: tf.Tensor2D;
  /** the same rows of the ego (layer-0) table, for the L2 term */
  ego: tf.Tensor2D;
}

export class LightGcn implements StudentModel {
  readonly ego: tf.Variable<tf.Rank.R2>;
  private readonly adj: CsrTensor;

  constructor(
    readonly shape: LightGcnShape,
    graph: NormalizedGraph,
    init: { seed: number; std?: number } | Float32Array,
  ) {
    const n = shape.nUsers + shape.nItems;
    if (graph.nNodes !== n) throw new Error(`graph has ${graph.nNodes} nodes, model expects ${n}`);
    let values: Float32Array;
    if (init instanceof Float32Array) {
      if (init.length !== n * shape.dim) {
        throw new Error(`initial embeddings have ${init.length} values, expected ${n}×${shape.dim}`);
      }
      values = init;
    } else {
      // N(0, 0.1²) as the reference implementation does; drawn from our seeded RNG so the
      // initialisation is identical on every backend.
      const rng = new Rng(init.seed);
      const std = init.std ?? 0.1;
      values = new Float32Array(n * shape.dim);
      for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std;
    }
    this.ego = tf.variable(tf.tensor2d(values, [n, shape.dim]), true, uniqueVarName(LIGHTGCN_EGO));
    this.adj = csrTensor(n, n, graph.indptr, graph.indices, graph.values);
  }

  get variables(): tf.Variable[] {
    return [this.ego];
  }

  get parameters(): number {
    return this.ego.size;
  }

  arrays(): NamedArray[] {
    return [this.egoArray()];
  }

  /** Mean of [E, ÂE, Â²E, …]: the final user and item embeddings, stacked. */
  propagate(): tf.Tensor2D {
    return tf.tidy(() => propagateMean(this.adj, this.ego, this.shape.layers));
  }

  /** The ego table as a checkpoint array. */
  egoArray(): NamedArray {
    return { name: LIGHTGCN_EGO, shape: this.ego.shape, data: this.egoValues() };
  }

  /** Gathers the batch's final and ego rows (one gather each, so one gradient scatter each). */
  batchEmbeddings(final: tf.Tensor2D, t: Triplets): BatchEmbeddings {
    const idx = tripletRows(t, this.shape.nUsers);
    const all = gatherRows(final, idx);
    const [users, pos, neg] = tf.split(all, 3, 0) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const ego = gatherRows(this.ego, idx);
    return { users, pos, neg, ego };
  }

  /** BPR: mean softplus(−(e_u·e_i − e_u·e_j)) + reg/2 · ‖ego rows‖² / B. */
  bprLoss(t: Triplets, reg: number): tf.Scalar {
    const final = this.propagate();
    const e = this.batchEmbeddings(final, t);
    return bprFromEmbeddings(e, reg, t.users.length);
  }

  /** Final (propagated) embeddings as one [N, d] array: users first, then items. */
  finalEmbeddings(): Float32Array {
    const f = this.propagate();
    const out = f.dataSync() as Float32Array;
    f.dispose();
    return out.slice();
  }

  egoValues(): Float32Array {
    return (this.ego.dataSync() as Float32Array).slice();
  }

  dispose(): void {
    this.ego.dispose();
    disposeCsr(this.adj);
  }
}

/** The registry's entry (trainer/models/registry.ts): the graph from the train split, the ego table seeded or from the checkpoint. */
export const lightgcnStudent: StudentKind = {
  create(data: Dataset, shape, from?: LoadedCheckpoint<unknown>) {
    const n = data.nUsers + data.nItems;
    const init = from ? requireArray(from, LIGHTGCN_EGO, [n, shape.dim]).data : { seed: shape.seed };
    const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
    return new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: shape.dim, layers: shape.layers }, graph, init);
  },
};

/** LightGCN propagation (the mean over layers 0..L), as one op on wasm: trainer/engine/propagate.ts. */
export { propagateMean };

/** Rows of (users, positives, negatives) in the stacked [users; items] table, as one index tensor. */
export function tripletRows(t: Triplets, nUsers: number): tf.Tensor1D {
  return tf.tensor1d(tripletIndex(t, nUsers), 'int32');
}

/** tripletRows' indices as an array: [users; nUsers + pos; nUsers + neg]. */
export function tripletIndex(t: Triplets, nUsers: number): Int32Array {
  const b = t.users.length;
  const rows = new Int32Array(3 * b);
  rows.set(t.users, 0);
  for (let k = 0; k < b; k++) {
    rows[b + k] = nUsers + t.pos[k];
    rows[2 * b + k] = nUsers + t.neg[k];
  }
  return rows;
}

export function bprFromEmbeddings(e: BatchEmbeddings, reg: number, batch: number): tf.Scalar {
  const x = tf.sum(tf.mul(e.users, tf.sub(e.pos, e.neg)), 1);
  const bpr = tf.mean(tf.softplus(tf.neg(x)));
  const l2 = tf.mul(tf.sum(tf.square(e.ego)), reg / (2 * batch));
  return tf.add(bpr, l2) as tf.Scalar;
}
