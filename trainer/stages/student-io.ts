/** Re-evaluation and embedding dumps from a saved student checkpoint. */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, type Dataset } from '../../data/dataset.js';
import { loadCheckpoint, CheckpointError } from '../checkpoint.js';
import { studentKind } from '../models/registry.js';
import { evaluateEmbeddings, type Metrics, type Split } from '../eval.js';
import { writeNpy } from '../../core/npy.js';
import type { StudentMeta } from './student.js';

export interface LoadedStudent {
  meta: StudentMeta;
  data: Dataset;
  /** final (propagated) embeddings, [nUsers + nItems, dim], users first */
  final: Float32Array;
}

/** Loads the checkpoint and its dataset (checked by hash) and propagates the embeddings. */
export function loadStudent(checkpointDir: string, dataDir?: string): LoadedStudent {
  const ck = loadCheckpoint<StudentMeta>(checkpointDir);
  const meta = ck.meta;
  if (meta.kind !== 'student') throw new CheckpointError(`${checkpointDir}: not a student checkpoint (kind ${meta.kind})`);
  const data = loadDataset(dataDir ?? meta.dataset.dir, { features: false });
  if (data.hash !== meta.dataset.hash) {
    throw new CheckpointError(`${checkpointDir}: trained on dataset hash ${meta.dataset.hash.slice(0, 12)}, but ${data.dir} has hash ${data.hash.slice(0, 12)}`);
  }
  const model = studentKind(meta.model ?? 'lightgcn').create(data, meta.config, ck);
  try {
    return { meta, data, final: model.finalEmbeddings() };
  } finally {
    model.dispose();
  }
}

export function evaluateStudent(checkpointDir: string, opts: { dataDir?: string; split: Split; ks?: number[] }): Metrics {
  const s = loadStudent(checkpointDir, opts.dataDir);
  return evaluateEmbeddings(s.final, s.meta.config.dim, s.data, { split: opts.split, ks: opts.ks });
}

/** Writes user_embeddings.npy [nUsers, d] and item_embeddings.npy [nItems, d] (row r = id r). */
export function dumpStudent(checkpointDir: string, outDir: string, opts: { dataDir?: string } = {}): { users: string; items: string } {
  const s = loadStudent(checkpointDir, opts.dataDir);
  const { nUsers, nItems } = s.data;
  const d = s.meta.config.dim;
  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  const users = join(out, 'user_embeddings.npy');
  const items = join(out, 'item_embeddings.npy');
  writeNpy(users, s.final.slice(0, nUsers * d), [nUsers, d]);
  writeNpy(items, s.final.slice(nUsers * d), [nItems, d]);
  return { users, items };
}
