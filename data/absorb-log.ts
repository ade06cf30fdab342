/**
 * `train --interactions LOG`: the nightly retrain absorbs what the server learned online. The
 * dataset's .inter file plus every log record as a train row (x_label 0) is written to a new
 * dataset folder (feature files linked, not copied) together with absorbed.json, which the
 * exporter copies into the manifest as the log position this model has absorbed, so the server
 * neither loses nor re-applies an interaction across the version switch. A user the dataset does
 * not have (any id the server accepted: "alice", "999999999") becomes a new row, and ids.json
 * records every row's external id, so nothing the server acknowledged can make the retrain fail.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InteractionLog, type LogEntry, type OnCorrupt } from '../repository/interaction-log.js';
import { writeFileAtomic } from '../core/atomic.js';
import { DataFileError } from '../core/errors.js';
import { loadDataset } from './dataset.js';
import { DATASET_JSON } from './feature-files.js';
import { IDS_FILE, rowIds } from './ids.js';

export const ABSORBED_FILE = 'absorbed.json';

export interface Absorbed {
  logPosition: number;
  /** the log's folder, or the shared stream's address (redis://…) */
  logDir: string;
  interactions: number;
  /** Users first seen in the log, appended as new rows. */
  newUsers: number;
  /** Records naming an item the dataset lacks (the server only accepts catalog items, so only a log of another catalog has them): not absorbed. */
  unknownItems: number;
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
  const text = readFileSync(join(src, inter[0]), 'utf8');
  const header = text.slice(0, text.indexOf('\n')).replace(/\r$/, '').split('\t').map((c) => c.trim());
  const iu = header.indexOf('userID');
  const ii = header.indexOf('itemID');
  const il = header.indexOf('x_label');
  // Rows by external id: the dataset's own (ids.json, else row numbers), then users new in the log.
  const base = loadDataset(src, { features: false });
  const userIds = base.ids?.users.slice() ?? rowIds(base.nUsers);
  const itemIds = base.ids?.items ?? rowIds(base.nItems);
  const userRow = new Map(userIds.map((id, r) => [id, r]));
  const itemRow = new Map(itemIds.map((id, r) => [id, r]));
  const lines: string[] = [];
  let unknownItems = 0;
  for (const e of entries) {
    const item = itemRow.get(e.item);
    if (item === undefined) {
      unknownItems++;
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
  const out = resolve(outDir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, inter[0]), Buffer.from(text.replace(/\n?$/, '\n') + lines.join('\n') + (lines.length ? '\n' : '')));
  // Every .npy and dataset.json: --feature and dataset.json may name feature files of any name.
  for (const f of readdirSync(src)) if (f.endsWith('.npy') || f === DATASET_JSON) symlinkSync(join(src, f), join(out, basename(f)));
  // Only where a row's id is not its number: a plain MMRec dataset stays one.
  if (base.ids || userIds.some((id, r) => id !== String(r))) {
    writeFileAtomic(join(out, IDS_FILE), Buffer.from(JSON.stringify({ users: userIds, items: itemIds })));
  }
  const absorbed: Absorbed = { logPosition: read.position, logDir: read.source, interactions: lines.length, newUsers, unknownItems };
  writeFileAtomic(join(out, ABSORBED_FILE), Buffer.from(JSON.stringify(absorbed, null, 2) + '\n'));
  return absorbed;
}
