/**
 * Item labels (issue 18): an optional `<name>.item` TSV beside the `.inter` file, carried into
 * the bundle (repository/bundle-format.ts `itemLabels`) for the request filters `labels` and
 * `exclude_labels`.
 *
 * Format: a header line `itemID<TAB>labels`, then one line per item: its id (as in the .inter
 * file, or ids.json's name of the row) and its labels separated by commas (`shoes,red,sale`;
 * spaces around a label are dropped, spaces inside one are kept: `running shoes`). A label is 1
 * to MAX_LABEL_CHARS characters, without control characters or commas; at most MAX_ITEM_LABELS
 * per item; an item on two lines, an unknown item or a bad label is an error naming file and line.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataFileError } from '../core/errors.js';
import { MAX_ITEM_LABELS } from '../core/defaults.js';
import { labelProblem } from '../repository/bundle-format.js';

export const ITEM_FILE_EXT = '.item';

/** The `<name>.item` file's labels by item row (items it does not name: none); an empty map when there is no file. */
export function readItemLabels(dir: string, name: string, itemRow: ReadonlyMap<string, number>): Map<number, string[]> {
  const file = join(dir, name + ITEM_FILE_EXT);
  const out = new Map<number, string[]>();
  if (!existsSync(file)) return out;
  const lines = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').split('\n');
  const header = (lines[0] ?? '').replace(/\r$/, '').split('\t').map((c) => c.trim());
  if (header[0] !== 'itemID' || header[1] !== 'labels' || header.length !== 2) {
    throw new DataFileError(file, `header must be "itemID<TAB>labels", got "${(lines[0] ?? '').slice(0, 60)}"`, 'line 1');
  }
  for (let n = 1; n < lines.length; n++) {
    const line = lines[n].replace(/\r$/, '');
    if (line.trim() === '') continue;
    const at = `line ${n + 1}`;
    const f = line.split('\t');
    if (f.length !== 2) throw new DataFileError(file, `has ${f.length} columns but the header has 2`, at);
    const id = f[0].trim();
    const row = itemRow.get(id);
    if (row === undefined) throw new DataFileError(file, `itemID "${id.slice(0, 40)}" is not an item of the dataset`, at);
    if (out.has(row)) throw new DataFileError(file, `itemID "${id.slice(0, 40)}" appears on two lines`, at);
    const labels = f[1].trim() === '' ? [] : f[1].split(',').map((l) => l.trim());
    if (labels.length > MAX_ITEM_LABELS) throw new DataFileError(file, `${labels.length} labels (at most ${MAX_ITEM_LABELS} per item)`, at);
    labels.forEach((l, k) => {
      const why = labelProblem(l);
      if (why) throw new DataFileError(file, `label ${k + 1} ${JSON.stringify(l.slice(0, 40))} ${why}`, at);
    });
    out.set(row, [...new Set(labels)]);
  }
  return out;
}

/** Labels by row → the `<name>.item` text (rows named by `ids`, row numbers without it). */
export function formatItemLabels(labels: ReadonlyMap<number, string[]>, ids?: readonly string[]): string {
  const rows = [...labels.keys()].sort((a, b) => a - b);
  return ['itemID\tlabels', ...rows.map((r) => `${ids ? ids[r] : r}\t${labels.get(r)!.join(',')}`)].join('\n') + '\n';
}
