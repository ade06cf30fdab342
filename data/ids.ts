/**
 * External ids of a dataset's rows. The MMRec layout's ids are row numbers; a dataset folder may
 * add `ids.json` ({users: [...], items: [...]}, the external id of each row) when some are not,
 * as the nightly retrain's merged dataset does for users first seen by the server.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataFileError } from '../core/errors.js';

export const IDS_FILE = 'ids.json';

export interface DatasetIds {
  users: string[];
  items: string[];
}

/** Row r's id when the folder has no ids.json: the row number itself. */
export const rowIds = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i));

/** The folder's ids.json checked against the row counts, or null when it has none. */
export function readDatasetIds(dir: string, nUsers: number, nItems: number): DatasetIds | null {
  const file = join(dir, IDS_FILE);
  if (!existsSync(file)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  const o = parsed as Partial<DatasetIds> | null;
  for (const [side, n] of [['users', nUsers], ['items', nItems]] as const) {
    const ids = o?.[side];
    if (!Array.isArray(ids)) throw new DataFileError(file, `"${side}" must be an array of ids`);
    if (ids.length !== n) throw new DataFileError(file, `"${side}" holds ${ids.length} ids for ${n} ${side} rows`);
    const seen = new Set<string>();
    ids.forEach((id, row) => {
      if (typeof id !== 'string' || id.length === 0) throw new DataFileError(file, `${side}[${row}] is not a non-empty string`);
      if (seen.has(id)) throw new DataFileError(file, `${side}[${row}]: id "${id}" appears twice`);
      seen.add(id);
    });
  }
  return o as DatasetIds;
}
