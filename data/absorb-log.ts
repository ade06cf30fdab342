/**
 * `train --interactions LOG`: the nightly retrain absorbs what the server learned online. The
 * dataset's .inter file plus every log record as a train row (x_label 0) is written to a new
 * dataset folder (feature files linked, not copied) together with absorbed.json, which the
 * exporter copies into the manifest as the log position this model has absorbed, so the server
 * neither loses nor re-applies an interaction across the version switch.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InteractionLog, type OnCorrupt } from '../repository/interaction-log.js';
import { writeFileAtomic } from '../core/atomic.js';
import { DataFileError } from '../core/errors.js';

export const ABSORBED_FILE = 'absorbed.json';

export interface Absorbed {
  logPosition: number;
  logDir: string;
  interactions: number;
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
  const src = resolve(dataDir);
  if (!existsSync(logDir)) throw new DataFileError(logDir, 'interaction log folder not found');
  const inter = readdirSync(src).filter((f) => f.endsWith('.inter'));
  if (inter.length !== 1) throw new DataFileError(src, `expected one .inter file, found ${inter.length}`);
  const text = readFileSync(join(src, inter[0]), 'utf8');
  const header = text.slice(0, text.indexOf('\n')).replace(/\r$/, '').split('\t').map((c) => c.trim());
  const iu = header.indexOf('userID');
  const ii = header.indexOf('itemID');
  const il = header.indexOf('x_label');
  // Read-only: the server may be appending to this log right now; the retrain must not cut what
  // looks like a torn tail (it may be a write in progress) nor write quarantine copies.
  const log = InteractionLog.open(logDir, { readOnly: true, onCorrupt: opts.onCorrupt });
  const entries = log.read(0);
  const lines: string[] = [];
  for (const e of entries) {
    for (const [what, v] of [['user', e.user], ['item', e.item]] as const) {
      if (!/^\d+$/.test(v)) throw new DataFileError(logDir, `${what} id "${v}" is not a row number of the MMRec layout`, `log position ${e.position}`);
    }
    const row = header.map(() => '');
    row[iu] = e.user;
    row[ii] = e.item;
    row[il] = '0';
    lines.push(row.join('\t'));
  }
  const out = resolve(outDir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, inter[0]), Buffer.from(text.replace(/\n?$/, '\n') + lines.join('\n') + (lines.length ? '\n' : '')));
  for (const f of readdirSync(src)) if (f.endsWith('_feat.npy')) symlinkSync(join(src, f), join(out, basename(f)));
  // log.position, not the last entry's: skipped damaged records after it are absorbed too (never replayed)
  const absorbed: Absorbed = { logPosition: log.position, logDir: resolve(logDir), interactions: entries.length };
  writeFileAtomic(join(out, ABSORBED_FILE), Buffer.from(JSON.stringify(absorbed, null, 2) + '\n'));
  return absorbed;
}
