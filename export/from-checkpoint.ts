/** Student checkpoint + its dataset → the in-memory bundle the exporter writes (LightGCN-style students, or SASRec). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadStudent } from '../trainer/stages/student-io.js';
import { readAbsorbed } from '../data/absorb-log.js';
import type { CatalogStateJson } from '../repository/bundle-format.js';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { rowIds } from '../data/ids.js';
import { userSequences } from '../data/sequences.js';
import { hashMismatch } from '../data/dataset-hash.js';
import { studentCheckpointDir, type DatasetRef } from '../trainer/stages/student.js';
import { CHECKPOINT_FILE, hasCheckpoint, loadCheckpoint } from '../trainer/checkpoint.js';
import type { LoopMeta } from '../trainer/loop.js';
import type { Csr } from '../core/csr.js';
import type { BundleInput } from './exporter.js';
import { ExportError } from './exporter.js';
import { assertFolder } from '../repository/versions.js';
import { SasrecForward } from '../repository/sasrec-forward.js';
import type { SequenceShape } from '../repository/sasrec-weights.js';
import { itemEncoderCheckpointDir, loadItemEncoder, studentWeightsHash } from '../trainer/stages/item-encoder.js';
import { itemEncoderDim } from '../repository/onnx-item-encoder-graph.js';

/** What a SASRec checkpoint's model.json carries (issue 19's contract with the trainer). */
interface SasrecMeta extends LoopMeta {
  model: 'sasrec';
  dataset: DatasetRef;
  shape: Omit<SequenceShape, 'lnEps'>;
  lnEps?: number;
  config?: Record<string, unknown>;
}

export function bundleFromCheckpoint(repo: string, name: string, opts: { dataDir?: string; onItemEncoder?: (what: string) => void } = {}): BundleInput {
  assertFolder(repo, 'model repository');
  const dir = studentCheckpointDir(repo, name);
  if (!hasCheckpoint(dir)) {
    throw new ExportError(`no student checkpoint at ${dir} (train one first: promptmm train --data DIR --name ${name})`);
  }
  if (checkpointModel(dir) === 'sasrec') return sasrecBundle(dir, name, opts.dataDir);
  const s = loadStudent(dir, opts.dataDir);
  const { nUsers, nItems } = s.data;
  const dim = s.meta.config.dim;
  if (s.final.length !== (nUsers + nItems) * dim) {
    throw new ExportError(`${dir}: embeddings hold ${s.final.length} values, expected (${nUsers} users + ${nItems} items) × dim ${dim}`);
  }
  return {
    name,
    dataset: { name: s.data.name, hash: s.data.hash, dir: s.data.dir },
    nUsers,
    nItems,
    dim,
    userEmbeddings: s.final.slice(0, nUsers * dim),
    itemEmbeddings: s.final.slice(nUsers * dim),
    // Row numbers unless the dataset names its rows (ids.json: users first seen by the server).
    ids: s.data.ids ?? { users: rowIds(nUsers), items: rowIds(nItems) },
    seen: s.data.trainByUser,
    popularity: s.data.itemPopularity,
    itemLabels: s.data.itemLabels,
    training: { objective: s.meta.objective, backend: s.meta.backend, parameters: s.meta.parameters, bestEpoch: s.meta.epoch, ...s.meta.config, model: s.meta.model },
    metrics: s.meta.metrics,
    // Trained with `--interactions LOG`: the log records this model has absorbed.
    logPosition: readAbsorbed(s.data.dir)?.logPosition ?? 0,
    catalogState: absorbedCatalogState(s.data.dir),
    ...itemEncoderFor(repo, name, dir, dim, opts.onItemEncoder),
  };
}

/**
 * The item encoder checkpoint, when there is one fit to this very student checkpoint (same
 * weights.bin); one fit to another (a student retrained with --no-item-encoder) is left out, said
 * through `note`.
 */
function itemEncoderFor(repo: string, name: string, studentDir: string, dim: number, note?: (what: string) => void): Pick<BundleInput, 'itemEncoder'> {
  const eDir = itemEncoderCheckpointDir(repo, name);
  if (!hasCheckpoint(eDir)) return {};
  const { meta, weights } = loadItemEncoder(eDir);
  if (meta.studentWeights !== studentWeightsHash(studentDir)) {
    note?.(`${eDir} was fit to another student checkpoint: item_encoder.onnx is not exported (train again without --no-item-encoder)`);
    return {};
  }
  if (itemEncoderDim(weights) !== dim) throw new ExportError(`${eDir}: outputs ${itemEncoderDim(weights)} values, the student's dim is ${dim}`);
  const v = meta.validation;
  return { itemEncoder: { weights, design: meta.design, validation: { heldOutCosine: v.cosine, heldOutRelMse: v.relMse, coldRecall20: v.recall, coldNdcg20: v.ndcg, studentRecall20: v.studentRecall, studentNdcg20: v.studentNdcg, users: v.users } } };
}

/** The checkpoint's `meta.model` (read from its model.json alone: the weights are loaded once, by the branch that needs them). */
function checkpointModel(dir: string): unknown {
  try {
    return (JSON.parse(readFileSync(join(dir, CHECKPOINT_FILE), 'utf8')) as { meta?: { model?: unknown } }).meta?.model;
  } catch {
    return undefined; // loadStudent reports an unreadable checkpoint with its own error
  }
}

/** Each row's last `n` entries, in order (sequences longer than maxLen keep their most recent items). */
function lastEntries(csr: Csr, n: number): Csr {
  const rows = csr.indptr.length - 1;
  const indptr = new Int32Array(rows + 1);
  for (let u = 0; u < rows; u++) indptr[u + 1] = indptr[u] + Math.min(n, csr.indptr[u + 1] - csr.indptr[u]);
  const indices = new Int32Array(indptr[rows]);
  for (let u = 0; u < rows; u++) indices.set(csr.indices.subarray(csr.indptr[u + 1] - (indptr[u + 1] - indptr[u]), csr.indptr[u + 1]), indptr[u]);
  return { indptr, indices };
}

/** Train + validation items per user, sorted ascending without repeats: what a sequential bundle's server filters out. */
function trainAndValidation(data: Dataset): Csr {
  const indptr = new Int32Array(data.nUsers + 1);
  const rows: Int32Array[] = [];
  for (let u = 0; u < data.nUsers; u++) {
    const t = data.trainByUser.indices.subarray(data.trainByUser.indptr[u], data.trainByUser.indptr[u + 1]);
    const v = data.valByUser.indices.subarray(data.valByUser.indptr[u], data.valByUser.indptr[u + 1]);
    const row = Int32Array.from(new Set([...t, ...v])).sort();
    rows.push(row);
    indptr[u + 1] = indptr[u] + row.length;
  }
  const indices = new Int32Array(indptr[data.nUsers]);
  rows.forEach((r, u) => indices.set(r, indptr[u]));
  return { indptr, indices };
}

/**
 * A SASRec checkpoint as a sequential bundle: the item vectors are seq.item_emb's rows
 * 0..nItems-1 (the HNSW index and model.onnx over them, as for LightGCN); each user's sequence is
 * its train + validation items in time order, the last maxLen; the user table holds the
 * encoder's vector of that sequence (zero for an empty one), which the server recomputes from
 * the live sequence.
 */
function sasrecBundle(dir: string, name: string, dataDir?: string): BundleInput {
  const ck = loadCheckpoint<SasrecMeta>(dir);
  const meta = ck.meta;
  if (!meta.shape || typeof meta.shape !== 'object') throw new ExportError(`${dir}: a sasrec checkpoint without meta.shape`);
  if (!meta.dataset?.dir && !dataDir) throw new ExportError(`${dir}: the checkpoint names no dataset folder; pass --data DIR`);
  // an ID-only model: only the interactions must match, and the checkpoint fixes the number of items
  const data = loadDataset(dataDir ?? meta.dataset.dir, { features: false, nItems: meta.shape.nItems });
  const why = hashMismatch(meta.dataset, data, 'interactions');
  if (why) throw new ExportError(`${dir}: ${why}`);
  const shape: SequenceShape = { ...meta.shape, lnEps: meta.lnEps };
  if (shape.nItems !== data.nItems) throw new ExportError(`${dir}: meta.shape.nItems is ${shape.nItems}, but ${data.dir} has ${data.nItems} items`);
  let forward: SasrecForward;
  try {
    forward = new SasrecForward(ck.arrays, shape);
  } catch (err) {
    throw new ExportError(`${dir}: ${(err as Error).message}`);
  }
  const { nUsers, nItems } = data;
  const d = shape.dim;
  const sequences = lastEntries(userSequences(data, 1), shape.maxLen);
  const userEmbeddings = new Float32Array(nUsers * d);
  for (let u = 0; u < nUsers; u++) {
    const v = forward.encodeSequence(sequences.indices.subarray(sequences.indptr[u], sequences.indptr[u + 1]));
    if (v) userEmbeddings.set(v, u * d);
  }
  return {
    name,
    dataset: { name: data.name, hash: data.hash, dir: data.dir },
    nUsers,
    nItems,
    dim: d,
    userEmbeddings,
    itemEmbeddings: ck.arrays.get('seq.item_emb')!.data.slice(0, nItems * d),
    ids: data.ids ?? { users: rowIds(nUsers), items: rowIds(nItems) },
    seen: trainAndValidation(data),
    popularity: data.itemPopularity,
    itemLabels: data.itemLabels,
    training: { model: 'sasrec', bestEpoch: meta.epoch, validMetric: meta.validMetric, ...meta.config, ...shape },
    metrics: meta.metrics,
    logPosition: readAbsorbed(data.dir)?.logPosition ?? 0,
    catalogState: absorbedCatalogState(data.dir),
    sequence: { shape, arrays: ck.arrays, sequences },
  };
}

/** The deletes and dislikes a retrain absorbed (absorbed.json), grouped as catalog_state.json holds them. */
function absorbedCatalogState(dataDir: string): CatalogStateJson | undefined {
  const a = readAbsorbed(dataDir);
  if (!a) return undefined;
  const byUser = new Map<string, Set<string>>();
  for (const [user, item] of a.dislikePairs ?? []) {
    let s = byUser.get(user);
    if (!s) byUser.set(user, (s = new Set()));
    s.add(item);
  }
  return { hidden: a.deletedItems ?? [], dislikes: [...byUser].map(([u, s]) => [u, [...s]]) };
}
