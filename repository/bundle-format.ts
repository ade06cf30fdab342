/**
 * The model bundle: what `promptmm export` writes to models/<name>/<version>/ and the server
 * reads. One place for the file names and the manifest's shape so both sides agree.
 */
import { MAX_ITEM_LABELS, MAX_LABEL_CHARS } from '../core/defaults.js';

export const BUNDLE_FORMAT = 'promptmm-bundle/1';

export const BUNDLE_FILES = {
  manifest: 'manifest.json',
  userEmbeddings: 'user_embeddings.npy',
  itemEmbeddings: 'item_embeddings.npy',
  ids: 'ids.json',
  seenOffsets: 'seen_offsets.npy',
  seenItems: 'seen_items.npy',
  popularity: 'item_popularity.npy',
  onnx: 'model.onnx',
  hnsw: 'items.hnsw',
} as const;

/**
 * Optional catalog files (issue 18): `item_labels.json`, the labels of the items that have any
 * (from the dataset's `<name>.item`), `{rows: [item row…], labels: [[label…]…]}` (parallel,
 * rows ascending), for the request filters `labels` / `exclude_labels`.
 */
export const CATALOG_FILES = {
  itemLabels: 'item_labels.json',
  catalogState: 'catalog_state.json',
} as const;

/**
 * catalog_state.json: what the model absorbed of DELETE /items and of dislikes, by external id,
 * so that a new version (a retrain, a fine-tuning round) keeps hiding them.
 */
export interface CatalogStateJson {
  hidden: string[];
  dislikes: [user: string, items: string[]][];
}

export interface ItemLabelsJson {
  rows: number[];
  labels: string[][];
}

// eslint-disable-next-line no-control-regex
const BAD_LABEL = /[\u0000-\u001F\u007F-\u009F\u2028\u2029\uD800-\uDFFF,]/;

/** What is wrong with a label (1 to MAX_LABEL_CHARS characters, no comma or control character), or null: one rule for `<name>.item`, the bundle and PUT /items. */
export function labelProblem(label: string): string | null {
  if (label.length === 0) return 'is empty';
  if (label.length > MAX_LABEL_CHARS) return `is longer than ${MAX_LABEL_CHARS} characters`;
  if (BAD_LABEL.test(label)) return 'holds a comma or a control character';
  return null;
}

/** The files a sequential bundle (manifest `model: "sasrec"`) adds: the encoder, and each user's last maxLen items (CSR, in order). */
export const SEQUENCE_FILES = {
  model: 'sequence.onnx',
  offsets: 'sequence_offsets.npy',
  items: 'sequence_items.npy',
} as const;

// ---- item encoder (issue 18): item_encoder.onnx, modality features → a vector in the student's item space ----
/** The file of a bundle whose manifest has an `itemEncoder` section. */
export const ITEM_ENCODER_FILE = 'item_encoder.onnx';

/** The manifest's `itemEncoder` section: how to feed item_encoder.onnx and what it was fit as. */
export interface ItemEncoderSection {
  file: typeof ITEM_ENCODER_FILE;
  /** one float32[B, dim] input per modality, named after it, in this order */
  modalities: { name: string; dim: number }[];
  /** the output's name; float32[B, manifest dim] */
  output: string;
  opset: number;
  /** how it was trained (trainer/models/item-encoder.ts): mlp, mlp-bpr, ridge or neighbors */
  design: string;
  /** widths of the dense layers' outputs (the last is the bundle's dim); empty for the neighbors design */
  layers: number[];
  /** the neighbors design: training items in its table, K, τ, whether outputs are rescaled to the neighbours' norm */
  neighbors?: { items: number; k: number; tau: number; rescale: boolean };
  /** outputs rescaled to this norm (a regression design's calibration) */
  outputNorm?: number;
  /** its validation figures at training time (held-out training items, cold-start ranking on the valid split) */
  validation?: Record<string, number>;
}
// ---- end item encoder ----

export interface HnswParams {
  space: 'ip';
  m: number;
  efConstruction: number;
  /** The query-time ef recommended by the exporter (measured, see bench/export.ts). */
  efSearch: number;
  seed: number;
}

export interface FileEntry {
  bytes: number;
  sha256: string;
}

/** A sequential bundle's encoder (sequence.onnx): its architecture and interface. */
export interface SequenceSection {
  maxLen: number;
  blocks: number;
  heads: number;
  ffDim: number;
  lnEps: number;
  opset: number;
  inputs: string[];
  outputs: string[];
}

export interface Manifest {
  format: typeof BUNDLE_FORMAT;
  name: string;
  version: number;
  createdAt: string;
  dataset: { name: string; hash: string; dir?: string };
  counts: { users: number; items: number; trainInteractions: number };
  dim: number;
  /** Training configuration of the student (and the method: plain or PromptMM KD). */
  training: Record<string, unknown>;
  /** Evaluation metrics recorded at training time (validation and test). */
  metrics: Record<string, unknown>;
  onnx: { opset: number; inputs: string[]; outputs: string[] };
  hnsw: HnswParams;
  /**
   * "sasrec": a sequential bundle, whose user vectors come from sequence.onnx run on each user's
   * live sequence (then `sequence` is set). Absent: the user table is the user vectors (LightGCN).
   */
  model?: 'sasrec';
  sequence?: SequenceSection;
  /** Present when the bundle has item_encoder.onnx (a multimodal training run): items added after export are placed from their features. */
  itemEncoder?: ItemEncoderSection;
  /** Interaction-log position this bundle has absorbed (online learning; 0 = none). */
  logPosition: number;
  files: Record<string, FileEntry>;
}

/** `{ users: [...], items: [...] }`: row r's external id. */
export interface IdMaps {
  users: string[];
  items: string[];
}
