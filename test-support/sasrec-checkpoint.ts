/**
 * SASRec checkpoints with random weights that follow issue 19's contract (names, shapes, meta),
 * for the export and serving tests until the trainer's own checkpoints are merged in.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { generateSynthetic } from '../data/synthetic.js';
import { exportBundle } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { HNSW } from './serving.js';
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

/** A repository with a tiny generated dataset (60 users × 40 items), a random SASRec checkpoint on it and that checkpoint exported as version 1. */
export function sasrecRepo(name: string, s: Omit<SequenceShape, 'nItems'> = { dim: 16, blocks: 2, heads: 2, maxLen: 6, ffDim: 16 }, seed = 1) {
  const root = mkdtempSync(join(tmpdir(), 'promptmm-seq-'));
  const dataDir = join(root, 'data');
  generateSynthetic({ dir: dataDir, users: 60, items: 40, interactionsPerUser: 9, modalities: [], seed });
  const data = loadDataset(dataDir, { features: false });
  const repo = join(root, 'repo');
  mkdirSync(repo);
  saveRandomSasrecCheckpoint(repo, name, data, s, seed);
  const input = bundleFromCheckpoint(repo, name);
  exportBundle(input, { repo, hnsw: HNSW });
  return { repo, data, input, shape: { ...s, nItems: data.nItems } };
}
