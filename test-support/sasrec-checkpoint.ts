/**
 * SASRec checkpoints with random weights that follow issue 19's contract (names, shapes, meta),
 * for the export and serving tests until the trainer's own checkpoints are merged in.
 */
import type { Dataset } from '../data/dataset.js';
import { Rng } from '../core/rng.js';
import { saveCheckpoint, type NamedArray } from '../trainer/checkpoint.js';
import { datasetRef, studentCheckpointDir } from '../trainer/stages/student.js';
import { sequenceWeightShapes, type SequenceShape } from '../repository/sasrec-weights.js';

/** Random weights: embeddings and matrices ~ N(0, scale²), layer-norm gains near 1, the padding row zero. */
export function randomSasrecArrays(shape: SequenceShape, seed = 1, scale = 0.3): NamedArray[] {
  const rng = new Rng(seed);
  return sequenceWeightShapes(shape).map(([name, dims]) => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    const gain = name.endsWith('.g');
    for (let i = 0; i < data.length; i++) data[i] = gain ? 1 + 0.2 * rng.normal() : scale * rng.normal();
    if (name === 'seq.item_emb') data.fill(0, shape.nItems * shape.dim);
    return { name, shape: dims, data };
  });
}

/** Saves a random SASRec student checkpoint for `data` where `promptmm export --name NAME` looks for it. */
export function saveRandomSasrecCheckpoint(repo: string, name: string, data: Dataset, s: Omit<SequenceShape, 'nItems'>, seed = 1): string {
  const shape = { ...s, nItems: data.nItems };
  const dir = studentCheckpointDir(repo, name);
  const metrics = { val: { 'ndcg@10': 0 }, test: { 'ndcg@10': 0 } };
  const meta = {
    // Every LoopMeta field, then the contract's.
    epoch: 1, lastEpoch: 1, metrics, validMetric: 'ndcg@10', secondsPerEpoch: 0, adamStep: 0, curve: [], createdAt: new Date().toISOString(),
    kind: 'student', dataset: datasetRef(data), model: 'sasrec', shape, lnEps: 1e-5,
  };
  const arrays = randomSasrecArrays(shape, seed);
  // An extra array the exporter must ignore (the trainer may store Adam moments).
  arrays.push({ name: 'adam.m.seq.item_emb', shape: [2], data: new Float32Array(2) });
  saveCheckpoint(dir, meta, arrays);
  return dir;
}
