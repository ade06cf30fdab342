/**
 * `train --interactions LOG`: the nightly retrain absorbs what the server learned online. The
 * dataset's .inter file plus every interaction record of the log as a train row (x_label 0) is
 * written to a new dataset folder (feature files linked, not copied, unless items were added)
 * together with absorbed.json, which the exporter copies into the manifest as the log position
 * this model has absorbed, so the server neither loses nor re-applies an interaction across the
 * version switch.
 *
 * Nothing the server acknowledged can make the retrain fail:
 * - a user the dataset does not have (any id the server accepted: "alice", "999999999") becomes
 *   a new row, and ids.json records every row's external id;
 * - an item added by `PUT /items` (an `item_put` record) becomes a new item row: its features are
 *   appended to copies of the feature files (a modality the record lacks: zeros, counted), its
 *   labels go to the merged `<name>.item`; a later put of the same item replaces them;
 * - a dataset with string ids (hashes, SKUs) is written with row numbers plus ids.json;
 * - a dislike is not a positive: it is not a train row (counted in `dislikes`); an item_delete is
 *   recorded in `deletedItems` (its past interactions stay train rows);
 * - a record naming an item neither the dataset nor an earlier put has (only a log of another
 *   catalog holds one) is skipped and counted.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InteractionLog, type LogEntry, type OnCorrupt } from '../repository/interaction-log.js';
import { writeFileAtomic } from '../core/atomic.js';
import { DataFileError } from '../core/errors.js';
import { encodeNpy } from '../core/npy.js';
import { loadDataset } from './dataset.js';
import { DATASET_JSON } from './feature-files.js';
import { IDS_FILE, rowIds } from './ids.js';
import { ITEM_FILE_EXT, formatItemLabels, readItemLabels } from './item-labels.js';

export const ABSORBED_FILE = 'absorbed.json';

export interface Absorbed {
  logPosition: number;
  /** the log's folder, or the shared stream's address (redis://…) */
  logDir: string;
  interactions: number;
  /** Users first seen in the log, appended as new rows. */
  newUsers: number;
  /** Items first seen in the log (PUT /items), appended as new rows. */
  newItems?: number;
  /** Records naming an item neither the dataset nor an earlier item_put has (only a log of another catalog has them): not absorbed. */
  unknownItems: number;
  /** Dislikes in the log (not train rows). */
  dislikes?: number;
  /** Items deleted through DELETE /items (external ids), not put again after; the export hides them in the bundle. */
  deletedItems?: string[];
  /** (user, item) dislikes, external ids: the export carries them into the bundle (catalog_state.json). */
  dislikePairs?: [string, string][];
  /** Item puts whose features did not fit the dataset's modalities (unknown modality or dimension: ignored; missing: zeros). */
  featureMismatches?: number;
}

export function readAbsorbed(dataDir: string): Absorbed | null {
  const f = join(dataDir, ABSORBED_FILE);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Absorbed) : null;
}

/**
 * Writes `outDir` = `dataDir` + the log's records as train rows; returns what was absorbed.
 * Damage before acknowledged records throws the log's LogCorruptError (segment, byte, position)
 * unless `onCorrupt` is 'skip' or the damage was quarantined already; a partial record at the end
 * (a live server's write in progress) is not read.
 */
export function mergeInteractionLog(dataDir: string, logDir: string, outDir: string, opts: { onCorrupt?: OnCorrupt } = {}): Absorbed {
  if (!existsSync(logDir)) throw new DataFileError(logDir, 'interaction log folder not found');
  // Read-only: the server may be appending to this log right now; the retrain must not cut what
  // looks like a torn tail (it may be a write in progress) nor write quarantine copies.
  const log = InteractionLog.open(logDir, { readOnly: true, onCorrupt: opts.onCorrupt });
  // log.position, not the last entry's: skipped damaged records after it are absorbed too (never replayed)
  return mergeLogEntries(dataDir, { entries: log.read(0), position: log.position, source: resolve(logDir) }, outDir);
}

/** What was read of a log for the merge: its entries, the position they reach, where they came from. */
export interface LogRead {
  entries: readonly LogEntry[];
  position: number;
  source: string;
}

/** mergeInteractionLog for entries already read (a shared stream's, train --interactions redis://…). */
export function mergeLogEntries(dataDir: string, read: LogRead, outDir: string): Absorbed {
  const src = resolve(dataDir);
  const entries = read.entries;
  const inter = readdirSync(src).filter((f) => f.endsWith('.inter'));
  if (inter.length !== 1) throw new DataFileError(src, `expected one .inter file, found ${inter.length}`);
  const name = inter[0].slice(0, -'.inter'.length);
  const text = readFileSync(join(src, inter[0]), 'utf8');
  const header = text.slice(0, text.indexOf('\n')).replace(/\r$/, '').split('\t').map((c) => c.trim());
  const iu = header.indexOf('userID');
  const ii = header.indexOf('itemID');
  const il = header.indexOf('x_label');
  const puts = entries.some((e) => e.kind === 'item_put');
  // Rows by external id: the dataset's own (ids.json or string ids, else row numbers), then users and items new in the log.
  const base = loadDataset(src, { features: puts, ignoreUnknownFiles: true });
  const userIds = base.ids?.users.slice() ?? rowIds(base.nUsers);
  const itemIds = base.ids?.items.slice() ?? rowIds(base.nItems);
  const userRow = new Map(userIds.map((id, r) => [id, r]));
  const itemRow = new Map(itemIds.map((id, r) => [id, r]));
  const labels = readItemLabels(src, name, itemRow);
  const newFeatures = new Map<number, Record<string, Float32Array>>();
  // What an earlier merge of this dataset absorbed stays in force (a chained nightly retrain).
  const before = readAbsorbed(src);
  const deleted = new Set<string>(before?.deletedItems ?? []);
  const dislikePairs: [string, string][] = [...(before?.dislikePairs ?? [])];
  const lines: string[] = [];
  let unknownItems = 0;
  let dislikes = 0;
  let featureMismatches = 0;
  for (const e of entries) {
    const kind = e.kind ?? 'interaction';
    if (kind === 'item_put') {
      let row = itemRow.get(e.item);
      if (row === undefined) {
        row = itemIds.length;
        itemIds.push(e.item);
        itemRow.set(e.item, row);
      }
      deleted.delete(e.item);
      const f = e.features ?? {};
      const fits = base.modalities.every((m) => f[m.name]?.length === m.dim) && Object.keys(f).every((k) => base.modalities.some((m) => m.name === k));
      if (!fits) featureMismatches++;
      newFeatures.set(row, f);
      if (e.labels) labels.set(row, e.labels);
      continue;
    }
    if (kind === 'item_delete') {
      if (itemRow.has(e.item)) deleted.add(e.item);
      continue;
    }
    const item = itemRow.get(e.item);
    if (item === undefined) {
      unknownItems++;
      continue;
    }
    if (kind === 'dislike') {
      dislikes++;
      dislikePairs.push([e.user, e.item]);
      continue;
    }
    let user = userRow.get(e.user);
    if (user === undefined) {
      user = userIds.length;
      userIds.push(e.user);
      userRow.set(e.user, user);
    }
    const row = header.map(() => '');
    row[iu] = String(user);
    row[ii] = String(item);
    row[il] = '0';
    lines.push(row.join('\t'));
  }
  const newUsers = userIds.length - base.nUsers;
  const newItems = itemIds.length - base.nItems;
  const out = resolve(outDir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // A dataset of string ids is written in row numbers (ids.json names them), so the log's rows can follow.
  const own = base.stringIds ? toRowNumbers(text, header, base.stringIds, userRow, itemRow) : text;
  writeFileAtomic(join(out, inter[0]), Buffer.from(own.replace(/\n?$/, '\n') + lines.join('\n') + (lines.length ? '\n' : '')));
  // Feature files: copies with the put items' rows when there are any, else links.
  const written = new Set<string>();
  if (newFeatures.size) {
    for (const m of base.modalities) {
      const data = new Float32Array(itemIds.length * m.dim);
      data.set(m.data.subarray(0, base.nItems * m.dim));
      for (const [row, f] of newFeatures) {
        const v = f[m.name];
        if (v?.length === m.dim) data.set(v, row * m.dim);
        else data.fill(0, row * m.dim, (row + 1) * m.dim);
      }
      const file = basename(m.file);
      writeFileAtomic(join(out, file), encodeNpy(data, [itemIds.length, m.dim]));
      written.add(file);
    }
  }
  // Every other .npy and dataset.json: --feature and dataset.json may name feature files of any name.
  for (const f of readdirSync(src)) if ((f.endsWith('.npy') || f === DATASET_JSON) && !written.has(f)) symlinkSync(join(src, f), join(out, basename(f)));
  if (labels.size) writeFileAtomic(join(out, name + ITEM_FILE_EXT), Buffer.from(formatItemLabels(labels, itemIds)));
  // Only where a row's id is not its number: a plain MMRec dataset stays one.
  if (base.ids || userIds.some((id, r) => id !== String(r)) || itemIds.some((id, r) => id !== String(r))) {
    writeFileAtomic(join(out, IDS_FILE), Buffer.from(JSON.stringify({ users: userIds, items: itemIds })));
  }
  const absorbed: Absorbed = {
    logPosition: read.position,
    logDir: read.source,
    interactions: lines.length,
    newUsers,
    newItems,
    unknownItems,
    dislikes,
    deletedItems: [...deleted],
    dislikePairs,
    featureMismatches,
  };
  writeFileAtomic(join(out, ABSORBED_FILE), Buffer.from(JSON.stringify(absorbed, null, 2) + '\n'));
  return absorbed;
}

/** The .inter text with its string id columns replaced by row numbers (the loader accepted it, so every id has a row). */
function toRowNumbers(text: string, header: string[], sides: { users: boolean; items: boolean }, userRow: Map<string, number>, itemRow: Map<string, number>): string {
  const iu = header.indexOf('userID');
  const ii = header.indexOf('itemID');
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  return lines
    .map((line, n) => {
      if (n === 0 || line.trim() === '') return line;
      const f = line.replace(/\r$/, '').split('\t');
      if (sides.users) f[iu] = String(userRow.get(f[iu].replace(/^ +| +$/g, '')));
      if (sides.items) f[ii] = String(itemRow.get(f[ii].replace(/^ +| +$/g, '')));
      return f.join('\t');
    })
    .join('\n');
}
