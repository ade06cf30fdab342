/** What every ID student offers the stages (training, checkpoints, evaluation, export); the registry maps names to them. */
import type { tf } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import type { Triplets } from '../../data/sampler.js';
import type { LoadedCheckpoint, NamedArray } from '../checkpoint.js';

/** A student being trained or read back: BPR on triplets, and final user + item embeddings. */
export interface StudentModel {
  readonly variables: tf.Variable[];
  /** trainable values, for the reports */
  readonly parameters: number;
  bprLoss(t: Triplets, reg: number): tf.Scalar;
  /** [nUsers + nItems, dim], users first: what evaluation scores and the bundle serves */
  finalEmbeddings(): Float32Array;
  /** the weights as checkpoint arrays */
  arrays(): NamedArray[];
  dispose(): void;
}

export interface StudentShape {
  dim: number;
  layers: number;
  seed: number;
}

export interface StudentKind {
  /** Fresh from `shape.seed`, or with the weights of `from` (resume, eval, export). */
  create(data: Dataset, shape: StudentShape, from?: LoadedCheckpoint<unknown>): StudentModel;
}
