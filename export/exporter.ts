/**
 * Writes one bundle version: every file into a temporary folder (each fsync'd), manifest.json
 * last, the folder fsync'd and renamed to the next integer version. A crash at any point
 * leaves a stale temporary folder (removed by the next export) and no new version.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fsyncPath, pidAlive, writeFileDurable } from '../core/atomic.js';
import { encodeNpy, encodeNpyInt32 } from '../core/npy.js';
import { BUNDLE_FILES, CATALOG_FILES, SEQUENCE_FILES, BUNDLE_FORMAT, type FileEntry, type HnswParams, type IdMaps, type ItemLabelsJson, type CatalogStateJson, type Manifest } from '../repository/bundle-format.js';
import { buildHnswIndex, type HnswBuildStats } from '../repository/hnsw-index.js';
import { buildScoringModel, ONNX_INPUTS, ONNX_OPSET, ONNX_OUTPUTS } from '../repository/onnx-scoring-graph.js';
import { buildSequenceModel, SEQUENCE_INPUTS, SEQUENCE_OPSET, SEQUENCE_OUTPUTS } from '../repository/onnx-sequence-graph.js';
import { DEFAULT_LN_EPS, sequenceWeights, type SequenceArrays, type SequenceShape } from '../repository/sasrec-weights.js';
import type { Csr } from '../core/csr.js';
import { ITEM_ENCODER_FILE } from '../repository/bundle-format.js';
import { buildItemEncoderModel, checkItemEncoderWeights, ITEM_ENCODER_OPSET, ITEM_ENCODER_OUTPUT, type ItemEncoderWeights } from '../repository/onnx-item-encoder-graph.js';
import { assertFolder, listVersions, modelDir, RepositoryError, sha256File, TMP_PREFIX } from '../repository/versions.js';

export class ExportError extends Error {
  override readonly name = 'ExportError';
}

/** Everything a bundle holds, in memory. Built from a student checkpoint, or synthetically by the scale benchmarks. */
export interface BundleInput {
  name: string;
  dataset: { name: string; hash: string; dir?: string };
  nUsers: number;
  nItems: number;
  dim: number;
  /** [nUsers, dim] and [nItems, dim], row = internal index. */
  userEmbeddings: Float32Array;
  itemEmbeddings: Float32Array;
  ids: IdMaps;
  /** Train items per user (CSR over users): the server filters them out. */
  seen: { indptr: Int32Array; indices: Int32Array };
  /** Train interactions per item: the cold-start ranking. */
  popularity: Int32Array;
  training: Record<string, unknown>;
  metrics: Record<string, unknown>;
  logPosition?: number;
  /**
   * A sequential (SASRec) bundle: the encoder's weights and shape (sequence.onnx) and each user's
   * most recent items, at most shape.maxLen, in order (the server's starting sequences).
   */
  sequence?: { shape: SequenceShape; arrays: SequenceArrays; sequences: Csr };
  /** Labels of the items that have any (the dataset's `<name>.item`): written as item_labels.json. */
  itemLabels?: ReadonlyMap<number, string[]>;
  /** Deleted items and dislikes the model absorbed (external ids): written as catalog_state.json when any. */
  catalogState?: CatalogStateJson;
  /** The item encoder (issue 18): item_encoder.onnx and the manifest's itemEncoder section. */
  itemEncoder?: { weights: ItemEncoderWeights; design: string; validation?: Record<string, number> };
  /** Or a served version's item encoder carried over as it is (a published fine-tuning round: its item space is the same). */
  itemEncoderCopy?: { onnx: Uint8Array; section: NonNullable<Manifest['itemEncoder']> };
}

/** Labels by row → the bundle's item_labels.json (rows ascending; items without labels left out). */
export function itemLabelsJson(labels: ReadonlyMap<number, string[]>): ItemLabelsJson {
  const rows = [...labels.keys()].filter((r) => labels.get(r)!.length > 0).sort((a, b) => a - b);
  return { rows, labels: rows.map((r) => labels.get(r)!) };
}

export interface ExportOptions {
  repo: string;
  hnsw: HnswParams;
  progress?: boolean;
  log?: Logger;
}

export interface ExportResult {
  version: number;
  dir: string;
  manifest: Manifest;
  bytes: number;
  seconds: number;
  hnsw: HnswBuildStats;
}

function validate(b: BundleInput): void {
  const { nUsers, nItems, dim } = b;
  const need = (ok: boolean, msg: string) => {
    if (!ok) throw new ExportError(msg);
  };
  need(Number.isInteger(dim) && dim > 0, `dim must be a positive integer, got ${dim}`);
  need(nItems > 0, 'the catalog is empty (0 items)');
  need(b.userEmbeddings.length === nUsers * dim, `user embeddings: ${b.userEmbeddings.length} values, expected ${nUsers} users × dim ${dim}`);
  need(b.itemEmbeddings.length === nItems * dim, `item embeddings: ${b.itemEmbeddings.length} values, expected ${nItems} items × dim ${dim}`);
  need(b.ids.users.length === nUsers, `ids: ${b.ids.users.length} user ids for ${nUsers} users`);
  need(b.ids.items.length === nItems, `ids: ${b.ids.items.length} item ids for ${nItems} items`);
  need(b.seen.indptr.length === nUsers + 1, `seen items: ${b.seen.indptr.length - 1} rows for ${nUsers} users`);
  need(b.popularity.length === nItems, `popularity: ${b.popularity.length} values for ${nItems} items`);
  for (const [what, t] of [['user', b.userEmbeddings], ['item', b.itemEmbeddings]] as const) {
    for (let i = 0; i < t.length; i++) {
      if (!Number.isFinite(t[i])) throw new ExportError(`${what} embeddings: non-finite value at row ${Math.floor(i / dim)} (the checkpoint is corrupt or training diverged)`);
    }
  }
  if (b.sequence) validateSequence(b, b.sequence);
  if (b.itemEncoder) {
    try {
      checkItemEncoderWeights(b.itemEncoder.weights, b.dim);
    } catch (err) {
      throw new ExportError((err as Error).message);
    }
  }
}

/** The encoder's weights and the sequences: what bundle-check.ts will hold the written files to. */
function validateSequence(b: BundleInput, q: NonNullable<BundleInput['sequence']>): void {
  const { shape, sequences } = q;
  if (shape.nItems !== b.nItems || shape.dim !== b.dim) throw new ExportError(`sequence encoder: shape is ${shape.nItems} items × dim ${shape.dim}, the bundle ${b.nItems} × ${b.dim}`);
  let w: Map<string, Float32Array>;
  try {
    w = sequenceWeights(q.arrays, shape);
  } catch (err) {
    throw new ExportError(`sequence encoder: ${(err as Error).message}`);
  }
  const table = w.get('seq.item_emb')!;
  for (let i = 0; i < b.itemEmbeddings.length; i++) {
    if (!Object.is(table[i], b.itemEmbeddings[i])) throw new ExportError(`item embeddings: row ${Math.floor(i / b.dim)} is not seq.item_emb's (a sequential bundle's item vectors are its item table)`);
  }
  if (sequences.indptr.length !== b.nUsers + 1) throw new ExportError(`sequences: ${sequences.indptr.length - 1} rows for ${b.nUsers} users`);
  for (let u = 0; u < b.nUsers; u++) {
    const n = sequences.indptr[u + 1] - sequences.indptr[u];
    if (n > shape.maxLen) throw new ExportError(`sequences: user ${u} has ${n} items, more than maxLen ${shape.maxLen} (keep the most recent maxLen)`);
  }
  for (const r of sequences.indices) if (!(r >= 0 && r < b.nItems)) throw new ExportError(`sequences: item row ${r} is outside [0, ${b.nItems})`);
}

/** Removes temporary folders of exporters that are no longer running. */
function removeStaleTemps(dir: string, log?: Logger): void {
  for (const e of readdirSync(dir)) {
    if (!e.startsWith(TMP_PREFIX)) continue;
    if (!pidAlive(Number(e.slice(TMP_PREFIX.length).split('-')[0]))) {
      rmSync(join(dir, e), { recursive: true, force: true });
      log?.info({ folder: e }, 'removed a stale temporary export folder');
    }
  }
}

/**
 * Test hook: PROMPTMM_EXPORT_FAULT="kill:<file>" or "enospc:<file>" simulates a crash or a
 * full disk just before <file> is written, so the tests can check what a crash leaves behind.
 */
function faultPoint(file: string): void {
  const spec = process.env.PROMPTMM_EXPORT_FAULT;
  if (!spec) return;
  const [kind, at] = spec.split(':');
  if (at !== file) return;
  if (kind === 'kill') process.kill(process.pid, 'SIGKILL');
  if (kind === 'enospc') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
}

/** A rough upper bound of the bundle's bytes, to refuse early on a disk that cannot hold it. */
function estimateBytes(b: BundleInput, m: number): number {
  const emb = (b.nUsers + b.nItems) * b.dim * 4;
  const onnx = b.nItems * b.dim * 4 * (b.sequence ? 2 : 1);
  const hnsw = b.nItems * (b.dim * 4 + m * 2 * 4 * 1.2 + 16);
  return emb + onnx + hnsw + (b.seen.indices.length + (b.sequence?.sequences.indices.length ?? 0)) * 4 + (b.nUsers + b.nItems) * 16 + (1 << 20);
}

function sequenceSection(s: SequenceShape): NonNullable<Manifest['sequence']> {
  return { maxLen: s.maxLen, blocks: s.blocks, heads: s.heads, ffDim: s.ffDim, lnEps: s.lnEps ?? DEFAULT_LN_EPS, opset: SEQUENCE_OPSET, inputs: SEQUENCE_INPUTS, outputs: SEQUENCE_OUTPUTS };
}

function itemEncoderSection(e: NonNullable<BundleInput['itemEncoder']>): NonNullable<Manifest['itemEncoder']> {
  const w = e.weights;
  return { file: ITEM_ENCODER_FILE, modalities: w.modalities.map((m) => ({ name: m.name, dim: m.dim })), output: ITEM_ENCODER_OUTPUT, opset: ITEM_ENCODER_OPSET, design: e.design, layers: w.neighbors ? [] : w.layers.map((l) => l.outDim), ...(w.neighbors ? { neighbors: { items: w.neighbors.n, k: w.neighbors.k, tau: w.neighbors.tau, rescale: w.neighbors.rescale } } : {}), ...(w.outputNorm !== undefined ? { outputNorm: w.outputNorm } : {}), ...(e.validation ? { validation: e.validation } : {}) };
}

export function exportBundle(input: BundleInput, opts: ExportOptions): ExportResult {
  const t0 = performance.now();
  validate(input);
  const root = modelDir(opts.repo, input.name);
  assertFolder(opts.repo, 'model repository');
  try {
    mkdirSync(root, { recursive: true });
  } catch (err) {
    throw new ExportError(`cannot create ${root}: ${(err as Error).message}`);
  }
  assertFolder(root, 'model folder');
  removeStaleTemps(root, opts.log);

  const need = estimateBytes(input, opts.hnsw.m);
  const fs = statfsSync(root);
  const free = Number(fs.bavail) * Number(fs.bsize);
  if (free < need) {
    throw new ExportError(`not enough space in ${root}: the bundle needs about ${(need / 2 ** 20).toFixed(0)} MiB, ${(free / 2 ** 20).toFixed(0)} MiB free`);
  }

  const version = (listVersions(opts.repo, input.name).at(-1) ?? 0) + 1;
  const tmp = join(root, `${TMP_PREFIX}${process.pid}-${version}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const files: Record<string, FileEntry> = {};
  let current = '';
  const put = (name: string, data: Uint8Array) => {
    current = name;
    faultPoint(name);
    writeFileDurable(join(tmp, name), data);
  };
  let hnswStats: HnswBuildStats;
  try {
    const { nUsers, nItems, dim } = input;
    put(BUNDLE_FILES.userEmbeddings, encodeNpy(input.userEmbeddings, [nUsers, dim]));
    put(BUNDLE_FILES.itemEmbeddings, encodeNpy(input.itemEmbeddings, [nItems, dim]));
    put(BUNDLE_FILES.ids, Buffer.from(JSON.stringify(input.ids)));
    put(BUNDLE_FILES.seenOffsets, encodeNpyInt32(input.seen.indptr, [nUsers + 1]));
    put(BUNDLE_FILES.seenItems, encodeNpyInt32(input.seen.indices, [input.seen.indices.length]));
    put(BUNDLE_FILES.popularity, encodeNpyInt32(input.popularity, [nItems]));
    put(BUNDLE_FILES.onnx, buildScoringModel(input.itemEmbeddings, nItems, dim));
    if (input.itemLabels?.size) put(CATALOG_FILES.itemLabels, Buffer.from(JSON.stringify(itemLabelsJson(input.itemLabels))));
    if (input.catalogState && (input.catalogState.hidden.length || input.catalogState.dislikes.length)) put(CATALOG_FILES.catalogState, Buffer.from(JSON.stringify(input.catalogState)));
    if (input.sequence) {
      const { sequences, shape, arrays } = input.sequence;
      put(SEQUENCE_FILES.model, buildSequenceModel(arrays, shape));
      put(SEQUENCE_FILES.offsets, encodeNpyInt32(sequences.indptr, [nUsers + 1]));
      put(SEQUENCE_FILES.items, encodeNpyInt32(sequences.indices, [sequences.indices.length]));
    }
    if (input.itemEncoder) put(ITEM_ENCODER_FILE, buildItemEncoderModel(input.itemEncoder.weights));
    else if (input.itemEncoderCopy) put(ITEM_ENCODER_FILE, Buffer.from(input.itemEncoderCopy.onnx));
    current = BUNDLE_FILES.hnsw;
    faultPoint(current);
    hnswStats = buildHnswIndex(input.itemEmbeddings, nItems, dim, opts.hnsw, join(tmp, BUNDLE_FILES.hnsw), { progress: opts.progress });
    fsyncPath(join(tmp, BUNDLE_FILES.hnsw));
    opts.log?.info({ items: nItems, seconds: +hnswStats.seconds.toFixed(2), itemsPerSecond: Math.round(hnswStats.itemsPerSecond) }, 'hnsw index built');

    for (const name of readdirSync(tmp).sort()) {
      current = name;
      files[name] = { bytes: statSync(join(tmp, name)).size, sha256: sha256File(join(tmp, name)) };
    }
    const manifest: Manifest = {
      format: BUNDLE_FORMAT,
      name: input.name,
      version,
      createdAt: new Date().toISOString(),
      dataset: input.dataset,
      counts: { users: nUsers, items: nItems, trainInteractions: input.seen.indices.length },
      dim,
      training: input.training,
      metrics: input.metrics,
      onnx: { opset: ONNX_OPSET, inputs: ONNX_INPUTS, outputs: ONNX_OUTPUTS },
      hnsw: opts.hnsw,
      ...(input.sequence ? { model: 'sasrec' as const, sequence: sequenceSection(input.sequence.shape) } : {}),
      ...(input.itemEncoder ? { itemEncoder: itemEncoderSection(input.itemEncoder) } : input.itemEncoderCopy ? { itemEncoder: input.itemEncoderCopy.section } : {}),
      logPosition: input.logPosition ?? 0,
      files,
    };
    put(BUNDLE_FILES.manifest, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    current = '(commit)';
    fsyncPath(tmp);
    faultPoint('(commit)');
    const dest = join(root, String(version));
    if (existsSync(dest)) throw new ExportError(`version ${version} of ${input.name} appeared while exporting (another exporter running?)`);
    renameSync(tmp, dest);
    fsyncPath(root);
    const bytes = Object.values(files).reduce((a, f) => a + f.bytes, 0) + Buffer.byteLength(JSON.stringify(manifest, null, 2) + '\n');
    return { version, dir: dest, manifest, bytes, seconds: (performance.now() - t0) / 1000, hnsw: hnswStats };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof ExportError || err instanceof RepositoryError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOSPC' ? 'no space left on device' : e.message;
    throw new ExportError(`export of ${input.name} failed while writing ${current}: ${why}; nothing was added to the repository`);
  }
}
