/** Re-evaluation and embedding dumps from a saved student checkpoint (embedding students and sequential ones). */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset, type Dataset } from '../../data/dataset.js';
import { loadCheckpoint, CheckpointError, type LoadedCheckpoint } from '../checkpoint.js';
import { studentKind } from '../models/registry.js';
import { SasRec } from '../models/sasrec.js';
import { Odmt } from '../models/odmt.js';
import { evaluateEmbeddings, type Metrics, type Split } from '../eval.js';
import { evaluateSequential, splitUserVectors } from '../sequential-eval.js';
import { writeNpy } from '../../core/npy.js';
import { isSequentialModel, modelDefaults } from '../../core/defaults.js';
import type { StudentMeta } from './student.js';
import { hashMismatch } from '../../data/dataset-hash.js';
import type { SequentialMeta } from './sequential.js';
import { odmtTeacherDir } from './sequential-kd.js';

export interface LoadedStudent {
  meta: StudentMeta;
  data: Dataset;
  /** final (propagated) embeddings, [nUsers + nItems, dim], users first */
  final: Float32Array;
}

/**
 * The checkpoint and its dataset. A student reads only IDs, so only the interactions must match
 * (by hash); the features are not opened, and the checkpoint fixes the number of items.
 */
function readStudent(checkpointDir: string, dataDir?: string, features = false): { ck: LoadedCheckpoint<StudentMeta | SequentialMeta>; data: Dataset } {
  const ck = loadCheckpoint<StudentMeta | SequentialMeta>(checkpointDir);
  const meta = ck.meta;
  if (meta.kind !== 'student') throw new CheckpointError(`${checkpointDir}: not a student checkpoint (kind ${meta.kind})`);
  const legacy = meta.dataset.featuresHash === undefined; // its hash covered the feature files, which then decide nItems too
  const data = loadDataset(dataDir ?? meta.dataset.dir, { features, nItems: legacy ? undefined : meta.dataset.nItems });
  const why = hashMismatch(meta.dataset, data, features ? 'all' : 'interactions');
  if (why) throw new CheckpointError(`${checkpointDir}: ${why}`);
  return { ck, data };
}

function isSequentialMeta(m: StudentMeta | SequentialMeta): m is SequentialMeta {
  return isSequentialModel(m.model ?? 'lightgcn');
}

/** Loads an embedding student's checkpoint and its dataset and propagates the embeddings. */
export function loadStudent(checkpointDir: string, dataDir?: string): LoadedStudent {
  return embeddingStudent(readStudent(checkpointDir, dataDir));
}

function embeddingStudent({ ck, data }: ReturnType<typeof readStudent>): LoadedStudent {
  const meta = ck.meta;
  if (isSequentialMeta(meta)) throw new CheckpointError(`${ck.dir}: a ${meta.model} checkpoint has no user table (its users are encoded from their sequences)`);
  const model = studentKind(meta.model ?? 'lightgcn').create(data, meta.config, ck);
  try {
    return { meta, data, final: model.finalEmbeddings() };
  } finally {
    model.dispose();
  }
}

/** A sequential checkpoint's model (the caller disposes it). */
export function loadSequential(checkpointDir: string, dataDir?: string): { meta: SequentialMeta; data: Dataset; model: SasRec } {
  return sequentialStudent(readStudent(checkpointDir, dataDir));
}

function sequentialStudent({ ck, data }: ReturnType<typeof readStudent>): { meta: SequentialMeta; data: Dataset; model: SasRec } {
  const meta = ck.meta;
  if (!isSequentialMeta(meta)) throw new CheckpointError(`${ck.dir}: a ${meta.model ?? 'lightgcn'} checkpoint, not a sequential one`);
  if (meta.shape.nItems !== data.nItems) throw new CheckpointError(`${ck.dir}: trained on ${meta.shape.nItems} items, but ${data.dir} has ${data.nItems}`);
  return { meta, data, model: SasRec.fromCheckpoint(ck as LoadedCheckpoint<unknown>, meta.shape) };
}

export function evaluateStudent(checkpointDir: string, opts: { dataDir?: string; split: Split; ks?: number[] }): Metrics {
  const read = readStudent(checkpointDir, opts.dataDir);
  if (isSequentialMeta(read.ck.meta)) {
    const s = sequentialStudent(read);
    try {
      return evaluateSequential(s.model, s.data, { split: opts.split, ks: opts.ks ?? (modelDefaults(s.meta.model).ks as number[]) });
    } finally {
      s.model.dispose();
    }
  }
  const s = embeddingStudent(read);
  return evaluateEmbeddings(s.final, s.meta.config.dim, s.data, { split: opts.split, ks: opts.ks });
}

/**
 * Writes user_embeddings.npy [nUsers, d] and item_embeddings.npy [nItems, d] (row r = id r). For a
 * sequential student the user rows are the encodings of the split's inputs (train for val, train +
 * validation for test; zeros for a user without one), so that mmrec_data.evaluate(U, I, d, split,
 * exclude) reproduces `eval --split`. `branch` (a checkpoint trained with `--seq-kd odmt` only):
 * one of ODMT's other branches (a modality's) or their ensemble, [nUsers | nItems, d × branches],
 * instead of the served ID branch; these need the dataset's feature files.
 */
export function dumpStudent(checkpointDir: string, outDir: string, opts: { dataDir?: string; split?: Split; branch?: string } = {}): { users: string; items: string; split?: Split; branch?: string } {
  const out = resolve(outDir);
  const users = join(out, 'user_embeddings.npy');
  const items = join(out, 'item_embeddings.npy');
  const other = opts.branch !== undefined && opts.branch !== 'id';
  const read = readStudent(checkpointDir, opts.dataDir, other);
  if (isSequentialMeta(read.ck.meta)) {
    // a student distilled from an ODMT run: the branches and their ensemble are the teacher's
    if (other && read.ck.meta.config.odmtStudent === 'distilled') return dumpStudent(odmtTeacherDir(checkpointDir), outDir, opts);
    const split = opts.split ?? 'test';
    const s = sequentialStudent(read);
    try {
      if (other) {
        const v = odmtBranchVectors(read.ck, s, split, opts.branch!);
        mkdirSync(out, { recursive: true });
        writeNpy(users, v.users, [s.data.nUsers, v.dim]);
        writeNpy(items, v.items, [s.data.nItems, v.dim]);
        return { users, items, split, branch: opts.branch };
      }
      const d = s.meta.shape.dim;
      const u = splitUserVectors(s.model, s.data, split);
      mkdirSync(out, { recursive: true });
      writeNpy(users, u, [s.data.nUsers, d]);
      writeNpy(items, s.model.itemEmbeddings(), [s.data.nItems, d]);
      return { users, items, split };
    } finally {
      s.model.dispose();
    }
  }
  if (other) throw new CheckpointError(`${checkpointDir}: --branch ${opts.branch} needs a sequential checkpoint trained with --seq-kd odmt; this one is a ${read.ck.meta.model ?? 'lightgcn'} student`);
  const s = embeddingStudent(read);
  const { nUsers, nItems } = s.data;
  const d = s.meta.config.dim;
  mkdirSync(out, { recursive: true });
  writeNpy(users, s.final.slice(0, nUsers * d), [nUsers, d]);
  writeNpy(items, s.final.slice(nUsers * d), [nItems, d]);
  return { users, items };
}

/** An ODMT checkpoint's other branch or ensemble, rebuilt from its `odmt.*` arrays around the served ID branch. */
function odmtBranchVectors(ck: LoadedCheckpoint<StudentMeta | SequentialMeta>, s: { meta: SequentialMeta; data: Dataset; model: SasRec }, split: Split, branch: string) {
  const cfg = s.meta.config;
  if (cfg.seqKd !== 'odmt') throw new CheckpointError(`${ck.dir}: --branch ${branch} needs a checkpoint trained with --seq-kd odmt (this one: --seq-kd ${cfg.seqKd ?? 'none'})`);
  const odmt = new Odmt(s.data, s.model, cfg, new Map([...ck.arrays].map(([k, v]) => [k, v.data])));
  try {
    return odmt.splitVectors(s.data, split, branch);
  } finally {
    odmt.dispose();
  }
}
