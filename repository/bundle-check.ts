/**
 * Checks the contents of a bundle whose checksums already passed: shapes, ranges, monotonic CSR
 * offsets, finite values, unique ids, the ANN index header and the ONNX item table, so that a
 * version which would hang, crash or mislead the server is refused before it can be swapped in.
 */
import { open } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { BUNDLE_FILES, CATALOG_FILES, SEQUENCE_FILES, labelProblem, type IdMaps, type Manifest } from './bundle-format.js';
import { MAX_ITEM_LABELS } from '../core/defaults.js';
import { ONNX_INPUTS, ONNX_OUTPUTS } from './onnx-scoring-graph.js';
import { SEQUENCE_INPUTS, SEQUENCE_OUTPUTS } from './onnx-sequence-graph.js';
import { ITEM_ENCODER_FILE } from './bundle-format.js';
import { itemEncoderSignature } from './onnx-item-encoder-graph.js';

const { onnx } = onnxProto;

/** One problem in one file of a bundle; the message starts with that file's name. */
export class BundleCheckError extends Error {
  override readonly name = 'BundleCheckError';

  constructor(
    /** The bundle file at fault (a name of BUNDLE_FILES). */
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** The bytes of an hnswlib index header: 6 size_t, 2 int, 3 size_t, 1 double, 1 size_t (64-bit builds). */
export const HNSW_HEADER_BYTES = 96;

interface Array2<T> {
  shape: number[];
  data: T;
}

/** A version as the loader parsed it, plus what the check needs of the two files it does not parse. */
export interface ParsedBundle {
  /** The version folder's name (models/<name>/<folder>/). */
  folder: string;
  manifest: Manifest;
  userEmbeddings: Array2<Float32Array>;
  itemEmbeddings: Array2<Float32Array>;
  /** The text of ids.json. */
  idsJson: string;
  seenOffsets: Array2<Int32Array>;
  seenItems: Array2<Int32Array>;
  popularity: Array2<Int32Array>;
  /** The first HNSW_HEADER_BYTES of items.hnsw (fewer if the file is shorter) and the file's size. */
  hnsw: { header: Uint8Array; fileBytes: number };
  /** model.onnx, whole. */
  onnx: Uint8Array;
  /** A sequential bundle's (manifest `model: "sasrec"`): the users' sequences as CSR and sequence.onnx, whole. */
  sequence?: { offsets: Array2<Int32Array>; items: Array2<Int32Array>; onnx: Uint8Array };
  /** The text of item_labels.json, when the bundle has one. */
  itemLabelsJson?: string;
  /** The text of catalog_state.json, when the bundle has one. */
  catalogStateJson?: string;
  /** item_encoder.onnx, whole, when the manifest has an `itemEncoder` section. */
  itemEncoder?: Uint8Array;
}

/** What the check builds on the way and the loader would otherwise build again. */
export interface CheckedBundle {
  ids: IdMaps;
  userIndex: Map<string, number>;
  itemIndex: Map<string, number>;
  /** Labels by item row (item_labels.json); empty when the bundle has none. */
  itemLabels: Map<number, string[]>;
  /** Hidden item rows and (user id, item rows) dislikes (catalog_state.json); empty when none. */
  catalogState: { hidden: number[]; dislikes: [string, number[]][] };
}

function fail(file: string, detail: string): never {
  throw new BundleCheckError(file, detail);
}

const fmtShape = (s: readonly number[]) => `(${s.join(', ')})`;

function shapeIs(file: string, shape: readonly number[], want: readonly number[]): void {
  if (shape.length !== want.length || shape.some((s, i) => s !== want[i])) fail(file, `shape ${fmtShape(shape)}, expected ${fmtShape(want)}`);
}

function checkManifest(m: Manifest, folder: string): void {
  const f = BUNDLE_FILES.manifest;
  if (!/^[1-9]\d*$/.test(folder)) fail(f, `the version folder "${folder}" is not a positive integer`);
  // The reloader tells new versions by folder and serves by manifest: a mismatch would be loaded again on every poll.
  if (m.version !== Number(folder)) fail(f, `version is ${JSON.stringify(m.version)} but the bundle is in folder ${folder}: they must be the same`);
  if (!Number.isSafeInteger(m.counts.users) || m.counts.users < 0) fail(f, `counts.users is ${m.counts.users}, expected a non-negative integer`);
  if (!Number.isSafeInteger(m.counts.items) || m.counts.items < 1) fail(f, `counts.items is ${m.counts.items}, expected a positive integer`);
  if (!Number.isSafeInteger(m.dim) || m.dim < 1) fail(f, `dim is ${m.dim}, expected a positive integer`);
  const ef = m.hnsw?.efSearch;
  if (!Number.isSafeInteger(ef) || ef < 1) fail(f, `hnsw.efSearch is ${JSON.stringify(ef)}, expected a positive integer`);
  if (m.logPosition !== undefined && (!Number.isSafeInteger(m.logPosition) || m.logPosition < 0)) {
    fail(f, `logPosition is ${JSON.stringify(m.logPosition)}, expected a non-negative integer`);
  }
}

function checkFinite(file: string, data: Float32Array, dim: number): void {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    // x - x is 0 for every finite x and NaN for NaN and ±Infinity; cheaper than Number.isFinite in this loop.
    if (x - x !== 0) {
      if (bad++ === 0) first = i;
    }
  }
  if (bad > 0) {
    fail(file, `${bad} non-finite value${bad === 1 ? '' : 's'} (NaN or ±Infinity), the first in row ${Math.floor(first / dim)} column ${first % dim} (${data[first]})`);
  }
}

/** A bundle file's JSON, or a BundleCheckError naming the file. */
function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(file, `not valid JSON (${(e as Error).message})`);
  }
}

function checkIds(text: string, users: number, items: number): Omit<CheckedBundle, 'itemLabels' | 'catalogState'> {
  const f = BUNDLE_FILES.ids;
  const parsed = parseJson(f, text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail(f, 'expected an object { "users": [...], "items": [...] }');
  const obj = parsed as Record<string, unknown>;
  const side = (key: 'users' | 'items', want: number): { list: string[]; index: Map<string, number> } => {
    const list = obj[key];
    if (!Array.isArray(list)) fail(f, `"${key}" is ${list === undefined ? 'missing' : 'not an array'}`);
    if (list.length !== want) fail(f, `${list.length} ${key}, manifest.json says ${want}`);
    const index = new Map<string, number>();
    for (let r = 0; r < list.length; r++) {
      const id: unknown = list[r];
      // Request ids arrive as strings and are looked up as given: any other type could never be found.
      if (typeof id !== 'string') fail(f, `${key}[${r}] is ${JSON.stringify(id)}: ids must be strings`);
      const prev = index.get(id);
      if (prev !== undefined) fail(f, `${key.slice(0, -1)} id ${JSON.stringify(id)} appears at rows ${prev} and ${r}: ids must be unique`);
      index.set(id, r);
    }
    return { list: list as string[], index };
  };
  const u = side('users', users);
  const it = side('items', items);
  return { ids: { users: u.list, items: it.list }, userIndex: u.index, itemIndex: it.index };
}

/** CSR of seen items: csrHas binary-searches a row between two offsets, so a bad offset can make it loop forever. */
function checkSeen(off: Int32Array, seen: Int32Array, users: number, items: number): void {
  const fo = BUNDLE_FILES.seenOffsets;
  const fs = BUNDLE_FILES.seenItems;
  if (off[0] !== 0) fail(fo, `offset 0 is ${off[0]}: the first offset must be 0`);
  for (let i = 1; i <= users; i++) {
    if (off[i] < off[i - 1]) fail(fo, `offset ${i} (user ${i - 1}) is ${off[i]}, below offset ${i - 1} (${off[i - 1]}): offsets must not decrease`);
  }
  if (off[users] !== seen.length) fail(fo, `the last offset is ${off[users]}, but ${fs} holds ${seen.length} items: they must be equal`);
  for (let u = 0; u < users; u++) {
    const end = off[u + 1];
    for (let p = off[u]; p < end; p++) {
      const v = seen[p];
      if (v < 0 || v >= items) fail(fs, `value ${p} (user ${u}) is ${v}, outside the catalog's rows [0, ${items})`);
      if (p > off[u] && v <= seen[p - 1]) {
        fail(fs, `value ${p} (user ${u}) is ${v}, not above the one before it (${seen[p - 1]}): each user's items must be sorted ascending without repeats`);
      }
    }
  }
}

function checkPopularity(pop: Int32Array): void {
  for (let i = 0; i < pop.length; i++) {
    if (pop[i] < 0) fail(BUNDLE_FILES.popularity, `item ${i} has popularity ${pop[i]}: counts must not be negative`);
  }
}

/** hnswlib trusts its header when it reads the index (and takes the dimension from the caller), so check it against the manifest first. */
function checkHnswHeader(header: Uint8Array, fileBytes: number, items: number, dim: number): void {
  const f = BUNDLE_FILES.hnsw;
  if (header.length < HNSW_HEADER_BYTES || fileBytes < HNSW_HEADER_BYTES) fail(f, `${fileBytes} bytes, too short for an hnswlib index header (${HNSW_HEADER_BYTES} bytes)`);
  const v = new DataView(header.buffer, header.byteOffset, HNSW_HEADER_BYTES);
  const u64 = (at: number) => Number(v.getBigUint64(at, true));
  const offsetLevel0 = u64(0);
  const maxElements = u64(8);
  const count = u64(16);
  const perElement = u64(24);
  const labelOffset = u64(32);
  const offsetData = u64(40);
  const maxLevel = v.getInt32(48, true);
  const entry = v.getUint32(52, true);
  const maxM0 = u64(64);
  if (count !== items) fail(f, `${count} items, manifest.json says ${items}`);
  const dataBytes = labelOffset - offsetData;
  if (dataBytes !== dim * 4) fail(f, `vectors of ${dataBytes} bytes (${dataBytes / 4} dimensions), manifest.json says dim ${dim} (${dim * 4} bytes)`);
  // The layout hnswlib writes: [link count + maxM0 links][vector][8-byte label], level 0 at offset 0.
  if (offsetLevel0 !== 0 || offsetData !== maxM0 * 4 + 4 || perElement !== labelOffset + 8) {
    fail(f, `inconsistent header (element ${perElement} bytes, links ${offsetData}, label at ${labelOffset}, maxM0 ${maxM0}): not an index hnswlib wrote`);
  }
  if (maxElements < count) fail(f, `capacity ${maxElements} below its ${count} items`);
  if (maxLevel < 0 || (count > 0 && entry >= count)) fail(f, `entry point ${entry} (level ${maxLevel}) is not one of its ${count} items`);
  const least = HNSW_HEADER_BYTES + count * (perElement + 4);
  if (fileBytes < least) fail(f, `${fileBytes} bytes, its header promises at least ${least}`);
}

const asNumber = (x: number | { toString(): string }) => (typeof x === 'number' ? x : Number(x.toString()));

type OnnxGraph = NonNullable<InstanceType<typeof onnx.ModelProto>['graph']>;

/** The graph of an ONNX file, its inputs and outputs named as the server feeds and reads them. */
function onnxGraph(f: string, bytes: Uint8Array, inputs: string[], outputs: string[]): OnnxGraph {
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    fail(f, `not an ONNX model (${(err as Error).message})`);
  }
  const g = model.graph;
  if (!g) fail(f, 'no graph');
  const names = (vs: { name?: string | null }[] | null | undefined) => (vs ?? []).map((x) => x.name ?? '');
  if (names(g.input).join() !== inputs.join()) fail(f, `inputs ${JSON.stringify(names(g.input))}, the server feeds ${JSON.stringify(inputs)}`);
  if (names(g.output).join() !== outputs.join()) fail(f, `outputs ${JSON.stringify(names(g.output))}, the server reads ${JSON.stringify(outputs)}`);
  return g;
}

/** A float initializer of the given shape, as float32 values. */
function floatInitializer(f: string, g: OnnxGraph, name: string, shape: number[], what: string): Float32Array {
  const t = (g.initializer ?? []).find((x) => x.name === name);
  if (!t) fail(f, `no ${name} initializer`);
  const dims = (t.dims ?? []).map(asNumber);
  if (dims.length !== shape.length || dims.some((x, i) => x !== shape[i])) fail(f, `${name} has shape ${fmtShape(dims)}, ${what} says ${fmtShape(shape)}`);
  if (t.dataType !== onnx.TensorProto.DataType.FLOAT) fail(f, `${name} has data type ${t.dataType}, expected FLOAT (${onnx.TensorProto.DataType.FLOAT})`);
  const n = shape.reduce((a, b) => a * b, 1);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  if (raw) {
    if (raw.length !== n * 4) fail(f, `${name} holds ${raw.length} bytes, expected ${shape.join(' × ')} float32 (${n * 4})`);
    return new Float32Array(new Uint8Array(raw).buffer);
  }
  const fd = t.floatData ?? [];
  if (fd.length !== n) fail(f, `${name} holds ${fd.length} values, expected ${shape.join(' × ')}`);
  return Float32Array.from(fd);
}

/** The first rows of an ONNX item table must be the item embeddings bit for bit: else exact, ANN and the encoder would disagree. */
function sameRows(f: string, name: string, table: Float32Array, items: Float32Array, dim: number): void {
  const a = Buffer.from(table.buffer, table.byteOffset, items.byteLength);
  if (a.equals(Buffer.from(items.buffer, items.byteOffset, items.byteLength))) return;
  for (let i = 0; i < items.length; i++) {
    if (!Object.is(table[i], items[i])) {
      fail(f, `${name} row ${Math.floor(i / dim)} differs from ${BUNDLE_FILES.itemEmbeddings} (column ${i % dim}: ${table[i]} vs ${items[i]}): exact and ANN retrieval would disagree`);
    }
  }
}

/** The exact scorer answers from model.onnx's own copy of the item table: it must be the item embeddings. */
function checkOnnx(bytes: Uint8Array, items: Float32Array, nItems: number, dim: number): void {
  const f = BUNDLE_FILES.onnx;
  const g = onnxGraph(f, bytes, ONNX_INPUTS, ONNX_OUTPUTS);
  sameRows(f, 'item_table', floatInitializer(f, g, 'item_table', [nItems, dim], BUNDLE_FILES.manifest), items, dim);
}

/**
 * A sequential bundle: the manifest's encoder section, the users' sequences (offsets from 0,
 * never decreasing, rows of at most maxLen catalog items) and sequence.onnx, whose item table
 * (plus its padding row) and positions must be the manifest's and the item embeddings.
 */
function checkSequence(b: ParsedBundle): void {
  const m = b.manifest;
  const fm = BUNDLE_FILES.manifest;
  if (m.model === undefined) return;
  if (m.model !== 'sasrec') fail(fm, `model is ${JSON.stringify(m.model)}: this server knows "sasrec" (sequential) or none (a user table)`);
  const s = m.sequence;
  if (!s || typeof s !== 'object') fail(fm, 'model is "sasrec" but the "sequence" section is missing');
  for (const key of ['maxLen', 'blocks', 'heads', 'ffDim'] as const) {
    if (!Number.isSafeInteger(s[key]) || s[key] < 1) fail(fm, `sequence.${key} is ${JSON.stringify(s[key])}, expected a positive integer`);
  }
  const seq = b.sequence;
  if (!seq) fail(SEQUENCE_FILES.model, 'missing from a sasrec bundle');
  const { users, items } = m.counts;
  const fo = SEQUENCE_FILES.offsets;
  const fi = SEQUENCE_FILES.items;
  shapeIs(fo, seq.offsets.shape, [users + 1]);
  if (seq.items.shape.length !== 1) fail(fi, `shape ${fmtShape(seq.items.shape)}, expected one dimension`);
  const off = seq.offsets.data;
  if (off[0] !== 0) fail(fo, `offset 0 is ${off[0]}: the first offset must be 0`);
  for (let u = 0; u < users; u++) {
    const n = off[u + 1] - off[u];
    if (n < 0) fail(fo, `offset ${u + 1} (user ${u}) is ${off[u + 1]}, below offset ${u} (${off[u]}): offsets must not decrease`);
    if (n > s.maxLen) fail(fo, `user ${u} has ${n} items, more than sequence.maxLen (${s.maxLen}): sequences hold the most recent maxLen`);
  }
  if (off[users] !== seq.items.data.length) fail(fo, `the last offset is ${off[users]}, but ${fi} holds ${seq.items.data.length} items: they must be equal`);
  const it = seq.items.data;
  for (let p = 0; p < it.length; p++) {
    if (it[p] < 0 || it[p] >= items) fail(fi, `value ${p} is ${it[p]}, outside the catalog's rows [0, ${items})`);
  }
  const f = SEQUENCE_FILES.model;
  const g = onnxGraph(f, seq.onnx, SEQUENCE_INPUTS, SEQUENCE_OUTPUTS);
  const table = floatInitializer(f, g, 'seq.item_emb', [items + 1, m.dim], `${fm} (items + the padding row)`);
  sameRows(f, 'seq.item_emb', table, b.itemEmbeddings.data, m.dim);
  floatInitializer(f, g, 'seq.pos_emb', [s.maxLen, m.dim], `${fm}'s sequence.maxLen`);
}

// ---- item encoder (issue 18) ----
/**
 * The manifest's `itemEncoder` section (file, modalities with unique names and positive dims) and
 * item_encoder.onnx: listed among the files (so its checksum was verified), one input per declared
 * modality in that order with its declared width, one output of the bundle's dim.
 */
function checkItemEncoder(b: ParsedBundle): void {
  const m = b.manifest;
  const s = m.itemEncoder;
  if (s === undefined) return;
  const fm = BUNDLE_FILES.manifest;
  const f = ITEM_ENCODER_FILE;
  if (!s || typeof s !== 'object') fail(fm, 'itemEncoder is not an object');
  if (s.file !== f) fail(fm, `itemEncoder.file is ${JSON.stringify(s.file)}, expected "${f}"`);
  if (!(f in m.files)) fail(fm, `itemEncoder is set but ${f} is not listed in files`);
  if (!Array.isArray(s.modalities) || s.modalities.length === 0) fail(fm, 'itemEncoder.modalities must be a non-empty array of {name, dim}');
  const names = new Set<string>();
  s.modalities.forEach((x, i) => {
    if (!x || typeof x.name !== 'string' || x.name.length === 0) fail(fm, `itemEncoder.modalities.${i}.name must be a non-empty string`);
    if (names.has(x.name)) fail(fm, `itemEncoder.modalities.${i}.name ${JSON.stringify(x.name)} appears twice`);
    names.add(x.name);
    if (!Number.isSafeInteger(x.dim) || x.dim < 1) fail(fm, `itemEncoder.modalities.${i}.dim is ${JSON.stringify(x.dim)}, expected a positive integer`);
  });
  if (typeof s.output !== 'string' || s.output.length === 0) fail(fm, 'itemEncoder.output must be a non-empty string');
  if (!b.itemEncoder) fail(f, 'missing from a bundle whose manifest has itemEncoder');
  let sig: ReturnType<typeof itemEncoderSignature>;
  try {
    sig = itemEncoderSignature(b.itemEncoder);
  } catch (err) {
    fail(f, `not an ONNX model (${(err as Error).message})`);
  }
  const want = s.modalities.map((x) => x.name);
  const got = sig.inputs.map((x) => x.name);
  if (got.join('\u0000') !== want.join('\u0000')) fail(f, `inputs ${JSON.stringify(got)}, manifest.json's itemEncoder.modalities say ${JSON.stringify(want)}`);
  sig.inputs.forEach((x, i) => {
    if (x.dim !== s.modalities[i].dim) fail(f, `input ${JSON.stringify(x.name)} has width ${x.dim}, manifest.json says ${s.modalities[i].dim}`);
  });
  if (sig.outputs.length !== 1 || sig.outputs[0].name !== s.output) fail(f, `outputs ${JSON.stringify(sig.outputs.map((x) => x.name))}, manifest.json's itemEncoder.output says ${JSON.stringify(s.output)}`);
  if (sig.outputs[0].dim !== m.dim) fail(f, `output width ${sig.outputs[0].dim}, manifest.json says dim ${m.dim}`);
}
// ---- end item encoder ----

/**
 * Checks every array of a parsed bundle against its manifest and folder; throws the first
 * BundleCheckError found. One linear pass over each array, so a 1M-item bundle still loads in
 * seconds; the id maps it builds on the way are returned for the loader to keep.
 */
export function checkBundle(b: ParsedBundle): CheckedBundle {
  const m = b.manifest;
  checkManifest(m, b.folder);
  const { users, items } = m.counts;
  const d = m.dim;
  shapeIs(BUNDLE_FILES.userEmbeddings, b.userEmbeddings.shape, [users, d]);
  shapeIs(BUNDLE_FILES.itemEmbeddings, b.itemEmbeddings.shape, [items, d]);
  shapeIs(BUNDLE_FILES.seenOffsets, b.seenOffsets.shape, [users + 1]);
  if (b.seenItems.shape.length !== 1) fail(BUNDLE_FILES.seenItems, `shape ${fmtShape(b.seenItems.shape)}, expected one dimension`);
  shapeIs(BUNDLE_FILES.popularity, b.popularity.shape, [items]);
  const checked = checkIds(b.idsJson, users, items);
  checkSeen(b.seenOffsets.data, b.seenItems.data, users, items);
  checkPopularity(b.popularity.data);
  checkFinite(BUNDLE_FILES.userEmbeddings, b.userEmbeddings.data, d);
  checkFinite(BUNDLE_FILES.itemEmbeddings, b.itemEmbeddings.data, d);
  checkHnswHeader(b.hnsw.header, b.hnsw.fileBytes, items, d);
  checkOnnx(b.onnx, b.itemEmbeddings.data, items, d);
  checkSequence(b);
  checkItemEncoder(b);
  return {
    ...checked,
    itemLabels: b.itemLabelsJson === undefined ? new Map() : checkItemLabels(b.itemLabelsJson, items),
    catalogState: b.catalogStateJson === undefined ? { hidden: [], dislikes: [] } : checkCatalogState(b.catalogStateJson, checked.itemIndex),
  };
}

/** catalog_state.json: every id a string; every item one of the bundle's. */
export function checkCatalogState(text: string, itemIndex: ReadonlyMap<string, number>): CheckedBundle['catalogState'] {
  const f = CATALOG_FILES.catalogState;
  const o = parseJson(f, text);
  const { hidden, dislikes } = (o ?? {}) as { hidden?: unknown; dislikes?: unknown };
  if (!Array.isArray(hidden) || !Array.isArray(dislikes)) fail(f, 'expected {"hidden": [item ids], "dislikes": [[user id, [item ids]], ...]}');
  const row = (id: unknown, where: string): number => {
    const r = typeof id === 'string' ? itemIndex.get(id) : undefined;
    if (r === undefined) fail(f, `${where} = ${JSON.stringify(id)} is not an item of this bundle`);
    return r;
  };
  return {
    hidden: hidden.map((id, n) => row(id, `hidden[${n}]`)),
    dislikes: dislikes.map((d: unknown, n) => {
      if (!Array.isArray(d) || d.length !== 2 || typeof d[0] !== 'string' || !Array.isArray(d[1])) fail(f, `dislikes[${n}] must be [user id, [item ids]]`);
      return [d[0], (d[1] as unknown[]).map((id, k) => row(id, `dislikes[${n}][1][${k}]`))] as [string, number[]];
    }),
  };
}

/** item_labels.json: parallel rows (ascending, in range) and label lists (each label by labelProblem's rule, at most MAX_ITEM_LABELS). */
export function checkItemLabels(text: string, items: number): Map<number, string[]> {
  const f = CATALOG_FILES.itemLabels;
  const o = parseJson(f, text);
  const { rows, labels } = (o ?? {}) as { rows?: unknown; labels?: unknown };
  if (!Array.isArray(rows) || !Array.isArray(labels)) fail(f, 'expected {"rows": [...], "labels": [[...], ...]}');
  if (rows.length !== labels.length) fail(f, `${rows.length} rows but ${labels.length} label lists`);
  const out = new Map<number, string[]>();
  let prev = -1;
  rows.forEach((r, n) => {
    if (!Number.isInteger(r) || r <= prev || r >= items) fail(f, `rows[${n}] = ${JSON.stringify(r)}: rows must be ascending item rows in [0, ${items})`);
    prev = r;
    const l = labels[n];
    if (!Array.isArray(l) || l.length > MAX_ITEM_LABELS) fail(f, `labels[${n}] must be an array of at most ${MAX_ITEM_LABELS} labels`);
    l.forEach((x: unknown, k: number) => {
      const why = typeof x === 'string' ? labelProblem(x) : 'is not a string';
      if (why) fail(f, `labels[${n}][${k}] ${why}`);
    });
    out.set(r, l as string[]);
  });
  return out;
}

/**
 * The ANN index answers with labels, which the server reads as item rows: each row once, all in
 * range. `labels` is hnswlib's getIdsList(), read from its label map, so a label held by two
 * elements shows up as one label short.
 */
export function checkHnswLabels(labels: ArrayLike<number>, items: number): void {
  const f = BUNDLE_FILES.hnsw;
  if (labels.length !== items) fail(f, `${labels.length} distinct labels for its ${items} items: some item row is missing or labels two elements`);
  const seen = new Uint8Array(items);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= items) fail(f, `label ${l} is not an item row in [0, ${items})`);
    if (seen[l]) fail(f, `label ${l} appears twice: each item row must be in the index once`);
    seen[l] = 1;
  }
}

/** The first `n` bytes of a file (fewer if it is shorter) and its size: the index header, without reading the index. */
export async function readFileHead(path: string, n: number): Promise<{ header: Uint8Array; fileBytes: number }> {
  const fh = await open(path, 'r');
  try {
    const fileBytes = (await fh.stat()).size;
    const header = new Uint8Array(Math.min(n, fileBytes));
    const { bytesRead } = await fh.read(header, 0, header.length, 0);
    return { header: header.subarray(0, bytesRead), fileBytes };
  } finally {
    await fh.close();
  }
}
