/** Re-evaluation and embedding dumps from a saved student checkpoint. */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, type Dataset } from '../../data/dataset.js';
import { loadCheckpoint, CheckpointError } from '../checkpoint.js';
import { studentKind } from '../models/registry.js';
import { evaluateEmbeddings, type Metrics, type Split } from '../eval.js';
import { writeNpy } from '../../core/npy.js';
import type { StudentMeta } from './student.js';
import { hashMismatch } from '../../data/dataset-hash.js';

export interface LoadedStudent {
  meta: StudentMeta;
  data: Dataset;
  /** final (propagated) embeddings, [nUsers + nItems, dim], users first */
  final: Float32Array;
}

/**
 * Loads the checkpoint and its dataset and propagates the embeddings. The student reads only
 * IDs, so only the interactions must match (by hash); the features are not opened, and the
 * checkpoint fixes the number of items.
 */
export function loadStudent(checkpointDir: string, dataDir?: string): LoadedStudent {
  const ck = loadCheckpoint<StudentMeta>(checkpointDir);
  const meta = ck.meta;
  if (meta.kind !== 'student') throw new CheckpointError(`${checkpointDir}: not a student checkpoint (kind ${meta.kind})`);
  const legacy = meta.dataset.featuresHash === undefined; // its hash covered the feature files, which then decide nItems too
  const data = loadDataset(dataDir ?? meta.dataset.dir, { features: false, nItems: legacy ? undefined : meta.dataset.nItems });
  const why = hashMismatch(meta.dataset, data, 'interactions');
  if (why) throw new CheckpointError(`${checkpointDir}: ${why}`);
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
