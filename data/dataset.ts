/**
 * Loader for the MMRec dataset layout: one `<name>.inter` TSV (userID, itemID, x_label with
 * 0 train / 1 validation / 2 test) and one feature file per modality (row i = item i):
 * `<modality>_feat.npy`, or any `.npy` named by dataset.json or `--feature` (feature-files.ts).
 * Everything malformed is a DataFileError naming the file and line/row.
 *
 * Ids: a side (users or items) whose every id is a decimal integer keeps row = id (the MMRec
 * layout; an `ids.json` may then name the rows). A side with any other id (a hash, a SKU:
 * 1–256 printable characters, no control characters) is read as strings: with an `ids.json`
 * its rows are that file's order (the feature files' row order), else the order in which the
 * ids are first seen in the file; Dataset.ids then names every row.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataFileError } from '../core/errors.js';
import { parseNpy, parseNpyHeader } from '../core/npy.js';
import { IDS_FILE, readDatasetIds, rowIds, type DatasetIds } from './ids.js';
import { resolveFeatureFiles, type FeatureFileOptions } from './feature-files.js';
import { featuresHash, interactionsHash } from './dataset-hash.js';
import { ITEM_FILE_EXT, readItemLabels } from './item-labels.js';

import type { Csr } from '../core/csr.js';

/** Row r's entries are indices[indptr[r]..indptr[r+1]), sorted ascending, deduplicated. */
export type { Csr };

/** Parallel arrays, in file order (duplicates kept). */
export interface Interactions {
  users: Int32Array;
  items: Int32Array;
  /** each interaction's position in the dataset's time order (Dataset.order), over all splits: what sequences sort by */
  rank: Int32Array;
}

/** Where the time order of each user's interactions comes from: a `timestamp` column (sorted stably), or the order of the lines. */
export type InteractionOrder = 'timestamp' | 'file';

export interface Modality {
  /** From "<name>_feat.npy", dataset.json or --feature, e.g. "image", "audio". */
  name: string;
  file: string;
  dim: number;
  /** nItems × dim, row-major. */
  data: Float32Array;
}

export interface Dataset {
  /** Basename of the .inter file without extension. */
  name: string;
  dir: string;
  /** sha256 hex of the interactions: the .inter and ids.json bytes (dataset-hash.ts) */
  hash: string;
  /** sha256 hex of the feature files by modality name; absent when the features were not loaded */
  featuresHash?: string;
  nUsers: number;
  nItems: number;
  train: Interactions;
  val: Interactions;
  test: Interactions;
  trainByUser: Csr;
  valByUser: Csr;
  testByUser: Csr;
  /** which time order `rank` follows (the loader's rule: a `timestamp` column when the header has one) */
  order: InteractionOrder;
  /** Distinct train users per item (i.e. column counts of trainByUser). */
  itemPopularity: Int32Array;
  /** Sorted by name; empty when the folder has no feature files or features were skipped. */
  modalities: Modality[];
  /** External ids of the rows, from the folder's ids.json or the .inter's string ids; absent when ids are the row numbers. */
  ids?: DatasetIds;
  /** Labels by item row from the folder's `<name>.item` (item-labels.ts); absent without one. */
  itemLabels?: Map<number, string[]>;
  /** The sides whose .inter ids are strings (mapped to rows through `ids`); absent when both are row numbers. */
  stringIds?: { users: boolean; items: boolean };
}

const REQUIRED = ['userID', 'itemID', 'x_label'] as const;
const SPLIT_NAMES = ['train (x_label 0)', 'validation (x_label 1)', 'test (x_label 2)'];
const MAX_ID = 0x7ffffffe; // ids index Int32Arrays; +1 must still fit

export interface LoadOptions extends FeatureFileOptions {
  /**
   * false: only the interactions (an ID-only model); feature files then count only for the
   * number of items, and `.npy` files nothing names are ignored
   */
  features?: boolean;
  /** the number of items when the caller knows it (a checkpoint's): no feature file is opened */
  nItems?: number;
}

/** Bytes read of a feature file when only its header is needed. */
const HEADER_BYTES = 64 * 1024;

export function loadDataset(dir: string, opts: LoadOptions = {}): Dataset {
  const absDir = resolve(dir);
  let st;
  try {
    st = statSync(absDir);
  } catch {
    throw new DataFileError(absDir, 'dataset folder not found');
  }
  if (!st.isDirectory()) throw new DataFileError(absDir, 'not a directory (expected a dataset folder)');

  const names = readdirSync(absDir, { withFileTypes: true })
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => e.name)
    .sort();
  const interNames = names.filter((n) => n.endsWith('.inter'));
  if (interNames.length === 0) throw new DataFileError(absDir, 'no .inter file in the dataset folder');
  if (interNames.length > 1) {
    throw new DataFileError(absDir, `more than one .inter file (${interNames.join(', ')}); expected exactly one`);
  }
  const withFeatures = opts.features !== false;
  const featFiles = opts.nItems !== undefined && !withFeatures ? [] : resolveFeatureFiles(absDir, names, { featureFiles: opts.featureFiles, ignoreUnknownFiles: opts.ignoreUnknownFiles || !withFeatures });

  const interFile = join(absDir, interNames[0]);
  const interBytes = readFileSync(interFile);
  const hash = interactionsHash(interBytes, names.includes(IDS_FILE) ? readFileSync(join(absDir, IDS_FILE)) : null);
  const hasIdsJson = names.includes(IDS_FILE);
  // Integer ids first (the fast path); a side with a non-integer id is read again as strings.
  let inter = parseInter(interBytes, interFile, null);
  let given: { users?: string[]; items?: string[] } | null = null;
  if (inter.stringSides) {
    given = hasIdsJson ? readIdsJsonLists(join(absDir, IDS_FILE)) : null;
    inter = parseInter(interBytes, interFile, { user: inter.stringSides.user, item: inter.stringSides.item, given });
  }
  for (let label = 0; label < 3; label++) {
    if (inter.count[label] === 0) throw new DataFileError(interFile, `the ${SPLIT_NAMES[label]} split is empty`);
  }

  // Feature headers first: their row counts are part of nItems (items without interactions).
  const feats = featFiles.map(({ name, file }) => {
    const buf = withFeatures ? readFileSync(file) : readHead(file, HEADER_BYTES);
    const { shape } = parseNpyHeader(buf, file);
    if (shape.length !== 2) throw new DataFileError(file, `expected a 2-D array (items × dim), got shape (${shape.join(', ')})`);
    if (shape[1] === 0) throw new DataFileError(file, 'feature dimension is 0');
    return { name, file, buf, rows: shape[0], dim: shape[1] };
  });
  const nUsers = inter.maxUser + 1;
  const nItems = Math.max(inter.maxItem + 1, opts.nItems ?? 0, ...feats.map((f) => f.rows));
  for (const f of feats) {
    if (f.rows < nItems) {
      const why = inter.maxItem + 1 === nItems ? `max itemID in ${interNames[0]} is ${inter.maxItem}` : 'another feature file has more rows';
      throw new DataFileError(f.file, `has ${f.rows} rows but there are ${nItems} items (${why})`);
    }
  }

  const modalities: Modality[] = [];
  if (withFeatures) {
    for (const f of feats) {
      const { data } = parseNpy(f.buf, f.file);
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new DataFileError(f.file, 'NaN or Inf value', `row ${Math.floor(bad / f.dim)}`);
      modalities.push({ name: f.name, file: f.file, dim: f.dim, data });
    }
  }

  const rank = timeRanks(inter);
  const splits = inter.count.map((n) => ({ users: new Int32Array(n), items: new Int32Array(n), rank: new Int32Array(n) }));
  const fill = [0, 0, 0];
  for (let i = 0; i < inter.n; i++) {
    const l = inter.labels[i];
    const k = fill[l]++;
    splits[l].users[k] = inter.users[i];
    splits[l].items[k] = inter.items[i];
    splits[l].rank[k] = rank[i];
  }
  const [train, val, test] = splits;
  const trainByUser = buildCsr(train, nUsers);
  const itemPopularity = new Int32Array(nItems);
  for (let i = 0; i < trainByUser.indices.length; i++) itemPopularity[trainByUser.indices[i]]++;

  const ids = inter.names ? namedIds(inter.names, given, nUsers, nItems, join(absDir, IDS_FILE)) : (readDatasetIds(absDir, nUsers, nItems) ?? undefined);
  const datasetName = interNames[0].slice(0, -'.inter'.length);
  const itemLabels = names.includes(datasetName + ITEM_FILE_EXT) ? readItemLabels(absDir, datasetName, new Map((ids?.items ?? rowIds(nItems)).map((id, r) => [id, r]))) : undefined;
  return {
    name: datasetName,
    dir: absDir,
    hash,
    featuresHash: withFeatures ? featuresHash(feats.map((f) => ({ name: f.name, bytes: f.buf }))) : undefined,
    nUsers,
    nItems,
    train,
    val,
    test,
    trainByUser,
    valByUser: buildCsr(val, nUsers),
    testByUser: buildCsr(test, nUsers),
    order: inter.times ? 'timestamp' : 'file',
    itemPopularity,
    modalities,
    stringIds: inter.names ? { users: inter.names.users !== null, items: inter.names.items !== null } : undefined,
    ids,
    itemLabels,
  };
}

/** ids.json's lists before the row counts are known (string ids are mapped through them); checked again by readDatasetIds' rules. */
function readIdsJsonLists(file: string): { users?: string[]; items?: string[] } {
  let o: unknown;
  try {
    o = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  const out: { users?: string[]; items?: string[] } = {};
  for (const side of ['users', 'items'] as const) {
    const ids = (o as Record<string, unknown> | null)?.[side];
    if (!Array.isArray(ids)) throw new DataFileError(file, `"${side}" must be an array of ids`);
    const seen = new Set<string>();
    ids.forEach((id, row) => {
      if (typeof id !== 'string' || id.length === 0) throw new DataFileError(file, `${side}[${row}] is not a non-empty string`);
      if (seen.has(id)) throw new DataFileError(file, `${side}[${row}]: id "${id}" appears twice`);
      seen.add(id);
    });
    out[side] = ids as string[];
  }
  return out;
}

/** Dataset.ids from the string sides' row names (an integer side: its row numbers). */
function namedIds(names: { users: string[] | null; items: string[] | null }, given: { users?: string[]; items?: string[] } | null, nUsers: number, nItems: number, idsFile: string): DatasetIds {
  const side = (a: string[] | null, list: string[] | undefined, n: number, what: string) => {
    if (!a) {
      // an integer side: its row numbers, or ids.json's names of them
      if (!list) return rowIds(n);
      if (list.length !== n) throw new DataFileError(idsFile, `"${what}" holds ${list.length} ids for ${n} ${what} rows`);
      return list;
    }
    // Rows past the last id seen (feature rows of items no interaction names, without an ids.json
    // naming them) get a placeholder id that no other row has.
    const taken = new Set(a);
    for (let r = a.length; r < n; r++) {
      let id = `#${r}`;
      while (taken.has(id)) id += '_';
      taken.add(id);
      a.push(id);
    }
    return a;
  };
  return { users: side(names.users, given?.users, nUsers, 'users'), items: side(names.items, given?.items, nItems, 'items') };
}

/** One line for logs: sizes per split, modality dims, and where the time order came from. */
export function datasetSummary(d: Dataset): string {
  const mods = d.modalities.length ? d.modalities.map((m) => `${m.name}(${m.dim})`).join(' ') : 'none';
  return (
    `${d.name}: ${d.nUsers} users, ${d.nItems} items, interactions train ${d.train.users.length} / ` +
    `val ${d.val.users.length} / test ${d.test.users.length}, modalities ${mods}, hash ${d.hash.slice(0, 12)}, ` +
    `time order: ${d.order === 'timestamp' ? 'timestamp column' : 'file lines'}`
  );
}

interface RawInter {
  n: number;
  /** the `timestamp` column's values, when the header has one */
  times: Float64Array | null;
  users: Int32Array;
  items: Int32Array;
  labels: Uint8Array;
  count: number[];
  maxUser: number;
  maxItem: number;
  /** integer pass: the sides that hold a non-integer id (read again as strings); null when both are integers */
  stringSides: { user: boolean; item: boolean } | null;
  /** string pass: each string side's id per row (row order); null for an integer side */
  names: { users: string[] | null; items: string[] | null } | null;
}

/** How a string side is read: its ids mapped to rows through ids.json's list, else numbered in first-seen order. */
interface StringMode {
  user: boolean;
  item: boolean;
  given: { users?: string[]; items?: string[] } | null;
}

/** A string id's longest form and the characters it may not hold (the server's ID_PATTERN: C0/C1 controls, DEL, U+2028/9). */
const MAX_ID_CHARS = 256;
// eslint-disable-next-line no-control-regex
const BAD_ID_CHARS = /[\u0000-\u001F\u007F-\u009F\u2028\u2029]/;

class IdRows {
  readonly names: string[];
  private readonly rows = new Map<string, number>();
  private readonly fixed: boolean;
  constructor(given: string[] | undefined) {
    this.fixed = given !== undefined;
    this.names = given ? given.slice() : [];
    this.names.forEach((id, r) => this.rows.set(id, r));
  }
  /** the id's row, or -1 when ids.json fixes the rows and lacks it */
  rowOf(id: string): number {
    let r = this.rows.get(id);
    if (r === undefined) {
      if (this.fixed) return -1;
      r = this.names.length;
      this.names.push(id);
      this.rows.set(id, r);
    }
    return r;
  }
}

/**
 * Byte-level TSV scan: real datasets have millions of lines, so no per-line strings or regexes;
 * field text is only materialised for error messages.
 */
function parseInter(buf: Buffer, file: string, strings: StringMode | null): RawInter {
  const len = buf.length;
  let pos = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0; // UTF-8 BOM
  let eol = buf.indexOf(0x0a, pos);
  if (eol < 0) eol = len;
  const headerLine = buf.toString('utf8', pos, eol).replace(/\r$/, '');
  if (headerLine.trim() === '') throw new DataFileError(file, 'missing header (expected userID, itemID, x_label)', 'line 1');
  const cols = headerLine.split('\t').map((c) => c.trim());
  const colIdx = REQUIRED.map((name) => cols.indexOf(name));
  for (let k = 0; k < REQUIRED.length; k++) {
    if (colIdx[k] < 0) {
      const hint = cols.length === 1 && /\s/.test(headerLine.trim()) ? '; the header must be tab-separated' : '';
      throw new DataFileError(file, `header lacks column "${REQUIRED[k]}" (found: ${cols.join(', ')})${hint}`, 'line 1');
    }
  }
  const nCols = cols.length;
  // role[c]: 0 = ignored column, 1 = userID, 2 = itemID, 3 = x_label, 4 = timestamp.
  const role = new Uint8Array(nCols);
  colIdx.forEach((c, k) => (role[c] = k + 1));
  const timeCol = cols.indexOf('timestamp');
  if (timeCol >= 0) role[timeCol] = 4;

  // Capacity guess from the byte count; grown on demand.
  let cap = Math.max(1024, Math.ceil(len / 8));
  let users: Int32Array = new Int32Array(cap);
  let items: Int32Array = new Int32Array(cap);
  let labels: Uint8Array = new Uint8Array(cap);
  let times: Float64Array | null = timeCol >= 0 ? new Float64Array(cap) : null;
  let n = 0;
  let maxUser = -1;
  let maxItem = -1;
  const count = [0, 0, 0];
  const userRows = strings?.user ? new IdRows(strings.given?.users) : null;
  const itemRows = strings?.item ? new IdRows(strings.given?.items) : null;
  let stringSides: { user: boolean; item: boolean } | null = null;

  let line = 1;
  pos = eol + 1;
  while (pos < len) {
    line++;
    let end = buf.indexOf(0x0a, pos);
    if (end < 0) end = len;
    let stop = end;
    if (stop > pos && buf[stop - 1] === 0x0d) stop--;
    // Blank (or whitespace-only) lines are skipped.
    let blank = true;
    for (let i = pos; i < stop; i++) {
      const c = buf[i];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0d) {
        blank = false;
        break;
      }
    }
    if (!blank) {
      let col = 0;
      let fieldStart = pos;
      let u = -1;
      let it = -1;
      let lab = -1;
      let time = 0;
      for (let i = pos; i <= stop; i++) {
        if (i < stop && buf[i] !== 0x09) continue;
        const r = col < nCols ? role[col] : 0;
        if (r === 4) {
          // only this column becomes a string: timestamps may be fractional or in exponent form
          const text = buf.toString('utf8', fieldStart, i).trim();
          time = text === '' ? NaN : Number(text);
          if (!Number.isFinite(time)) throw new DataFileError(file, `timestamp "${fieldText(buf, fieldStart, i)}" is not a number`, `line ${line}`);
        } else if ((r === 1 && userRows) || (r === 2 && itemRows)) {
          const v = stringId(buf, fieldStart, i, file, line, r === 1 ? 'userID' : 'itemID', (r === 1 ? userRows : itemRows)!);
          if (r === 1) u = v;
          else it = v;
        } else if (r !== 0) {
          const v = parseId(buf, fieldStart, i);
          if (r === 3) {
            if (v < 0 || v > 2) {
              throw new DataFileError(file, `x_label "${fieldText(buf, fieldStart, i)}" is not 0, 1 or 2`, `line ${line}`);
            }
            lab = v;
          } else {
            if (v < 0) {
              // Not an integer (or past an Int32 row): this side's ids are strings; the caller reads the file again so.
              if (strings) throw new Error('unreachable: a string side parsed as integers');
              stringSides ??= { user: false, item: false };
              if (r === 1) stringSides.user = true;
              else stringSides.item = true;
            }
            if (r === 1) u = v;
            else it = v;
          }
        }
        col++;
        fieldStart = i + 1;
      }
      if (col < nCols) {
        throw new DataFileError(file, `has ${col} column${col === 1 ? '' : 's'} but the header has ${nCols}`, `line ${line}`);
      }
      if (n === cap) {
        cap *= 2;
        users = grow(users, cap);
        items = grow(items, cap);
        const l2 = new Uint8Array(cap);
        l2.set(labels);
        labels = l2;
        if (times) {
          const t2 = new Float64Array(cap);
          t2.set(times);
          times = t2;
        }
      }
      if (times) times[n] = time;
      users[n] = u;
      items[n] = it;
      labels[n] = lab;
      n++;
      count[lab]++;
      if (u > maxUser) maxUser = u;
      if (it > maxItem) maxItem = it;
    }
    pos = end + 1;
  }
  const names = strings ? { users: userRows?.names ?? null, items: itemRows?.names ?? null } : null;
  // ids.json's rows count even when no interaction names them (the feature files' rows).
  if (userRows) maxUser = Math.max(maxUser, userRows.names.length - 1);
  if (itemRows) maxItem = Math.max(maxItem, itemRows.names.length - 1);
  return { n, times: times && times.subarray(0, n), users: users.subarray(0, n), items: items.subarray(0, n), labels: labels.subarray(0, n), count, maxUser, maxItem, stringSides, names };
}

/** A string id's row; refused (file and line) when empty, longer than 256 characters, with a control character, or absent from ids.json. */
function stringId(buf: Buffer, start: number, end: number, file: string, line: number, name: string, rows: IdRows): number {
  while (start < end && buf[start] === 0x20) start++;
  while (end > start && buf[end - 1] === 0x20) end--;
  if (start === end) throw new DataFileError(file, `${name} is empty`, `line ${line}`);
  const id = buf.toString('utf8', start, end);
  if (id.length > MAX_ID_CHARS) throw new DataFileError(file, `${name} "${fieldText(buf, start, end)}" is longer than ${MAX_ID_CHARS} characters`, `line ${line}`);
  if (BAD_ID_CHARS.test(id) || id.includes('\uFFFD')) {
    throw new DataFileError(file, `${name} ${JSON.stringify(fieldText(buf, start, end))} holds a control character or invalid UTF-8`, `line ${line}`);
  }
  const row = rows.rowOf(id);
  if (row < 0) throw new DataFileError(file, `${name} "${fieldText(buf, start, end)}" is not in ${IDS_FILE}, which fixes the rows`, `line ${line}`);
  return row;
}

/** Each line's position in time order: by timestamp, ties (and a file without the column) in line order. */
function timeRanks(inter: RawInter): Int32Array {
  const rank = new Int32Array(inter.n);
  const t = inter.times;
  if (!t) {
    for (let i = 0; i < inter.n; i++) rank[i] = i;
    return rank;
  }
  const byTime = new Int32Array(inter.n);
  for (let i = 0; i < inter.n; i++) byTime[i] = i;
  byTime.sort((a, b) => t[a] - t[b] || a - b);
  for (let r = 0; r < inter.n; r++) rank[byTime[r]] = r;
  return rank;
}

/** Decimal digits with optional surrounding spaces → value; -1 if not an integer, -2 if too large. */
function parseId(buf: Buffer, start: number, end: number): number {
  while (start < end && buf[start] === 0x20) start++;
  while (end > start && buf[end - 1] === 0x20) end--;
  if (start === end) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
    if (v > MAX_ID) return -2;
  }
  return v;
}

function fieldText(buf: Buffer, start: number, end: number): string {
  const s = buf.toString('utf8', start, end);
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}

/** The first `n` bytes of a file (or all of a shorter one). */
function readHead(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    return buf.subarray(0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

function grow(a: Int32Array, cap: number): Int32Array {
  const b = new Int32Array(cap);
  b.set(a);
  return b;
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN
  }
  return -1;
}

/** Per-user rows, items sorted ascending and deduplicated (counting sort, then per-row sort). */
function buildCsr(x: Interactions, nRows: number): Csr {
  const indptr = new Int32Array(nRows + 1);
  for (let i = 0; i < x.users.length; i++) indptr[x.users[i] + 1]++;
  for (let r = 0; r < nRows; r++) indptr[r + 1] += indptr[r];
  const fillPos = indptr.slice(0, nRows);
  const raw = new Int32Array(x.users.length);
  for (let i = 0; i < x.users.length; i++) raw[fillPos[x.users[i]]++] = x.items[i];
  // Sort each row and drop duplicates, compacting in place.
  const outPtr = new Int32Array(nRows + 1);
  let w = 0;
  for (let r = 0; r < nRows; r++) {
    const a = indptr[r];
    const b = indptr[r + 1];
    if (b - a > 1) raw.subarray(a, b).sort();
    for (let i = a; i < b; i++) {
      if (i > a && raw[i] === raw[i - 1]) continue;
      raw[w++] = raw[i];
    }
    outPtr[r + 1] = w;
  }
  return { indptr: outPtr, indices: w === raw.length ? raw : raw.slice(0, w) };
}
