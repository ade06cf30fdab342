/**
 * Which `.npy` files of a dataset folder are its modalities. Three sources, later ones
 * overriding earlier ones by modality name: the MMRec convention (`<name>_feat.npy`), the
 * `features` map of an optional `dataset.json` beside the data, and `train --feature NAME=FILE`.
 * Public releases often name their files after the encoder (`all-MiniLM-L6-v2.npy`,
 * `vggish.npy`): such a file used by none of them is an error naming it and the flag, unless the
 * caller ignores unknown files, so a modality is never dropped silently.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { DataFileError } from '../core/errors.js';

export const DATASET_JSON = 'dataset.json';
const FEAT_RE = /^(.+)_feat\.npy$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface FeatureFile {
  /** the modality name, e.g. "image", "text" */
  name: string;
  /** absolute path */
  file: string;
}

export interface FeatureFileOptions {
  /** `--feature NAME=FILE` entries (FILE relative to the dataset folder, or absolute) */
  featureFiles?: Record<string, string>;
  /** `.npy` files no source names are ignored instead of refused */
  ignoreUnknownFiles?: boolean;
}

/** `NAME=FILE` (one `--feature` value) → [NAME, FILE]; the error names the flag. */
export function parseFeatureFlag(raw: string): [string, string] {
  const eq = raw.indexOf('=');
  const name = eq > 0 ? raw.slice(0, eq).trim() : '';
  const file = eq > 0 ? raw.slice(eq + 1).trim() : '';
  if (!name || !file) throw new Error(`expected NAME=FILE (e.g. --feature text=all-MiniLM-L6-v2.npy), got "${raw}"`);
  if (!NAME_RE.test(name)) throw new Error(`modality name "${name}" must be letters, digits, '_', '-' or '.'`);
  return [name, file];
}

/**
 * The folder's modalities, sorted by name. `names` are the folder's file names. Throws a
 * DataFileError naming the file for a mapping to a missing file, one file under two names, or
 * (unless ignoreUnknownFiles) a `.npy` file that nothing maps.
 */
export function resolveFeatureFiles(dir: string, names: string[], opts: FeatureFileOptions = {}): FeatureFile[] {
  const byName = new Map<string, { file: string; from: string }>();
  for (const n of names) {
    const m = FEAT_RE.exec(n);
    if (m) byName.set(m[1], { file: join(dir, n), from: n });
  }
  for (const [name, file] of Object.entries(readDatasetJson(dir))) byName.set(name, { file: resolve(dir, file), from: `${DATASET_JSON} "features"."${name}"` });
  for (const [name, file] of Object.entries(opts.featureFiles ?? {})) {
    if (!NAME_RE.test(name)) throw new Error(`--feature ${name}=${file}: modality name "${name}" must be letters, digits, '_', '-' or '.'`);
    byName.set(name, { file: isAbsolute(file) ? file : resolve(dir, file), from: `--feature ${name}=${file}` });
  }

  const used = new Map<string, string>();
  const out: FeatureFile[] = [];
  for (const [name, { file, from }] of [...byName].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (!existsSync(file)) throw new DataFileError(file, `feature file not found (named by ${from}; a relative FILE is taken inside the dataset folder)`);
    const other = used.get(file);
    if (other !== undefined) throw new DataFileError(file, `named for two modalities, "${other}" and "${name}"`);
    used.set(file, name);
    out.push({ name, file });
  }

  const unknown = names.filter((n) => n.toLowerCase().endsWith('.npy') && !used.has(join(dir, n)));
  if (unknown.length && !opts.ignoreUnknownFiles) {
    const suggestion = unknown.map((n) => `--feature ${n.replace(/\.npy$/i, '').replace(/[^A-Za-z0-9_.-]/g, '_')}=${n}`).join(' ');
    throw new DataFileError(
      dir,
      `${unknown.length === 1 ? 'a .npy file is' : `${unknown.length} .npy files are`} not a modality: ${unknown.join(', ')} ` +
        `(a modality is <name>_feat.npy, a "features" entry of ${DATASET_JSON}, or --feature NAME=FILE; e.g. ${suggestion}; ` +
        'or pass --ignore-unknown-files to train without them)',
    );
  }
  return out;
}

/** `dataset.json`'s `features` ({name: file}); {} when the folder has none. */
function readDatasetJson(dir: string): Record<string, string> {
  const file = join(dir, DATASET_JSON);
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new DataFileError(file, 'must be a JSON object such as {"features": {"text": "all-MiniLM-L6-v2.npy"}}');
  const o = parsed as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => k !== 'features');
  if (extra.length) throw new DataFileError(file, `unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => `"${k}"`).join(', ')} (it holds only "features")`);
  const f = o.features ?? {};
  if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new DataFileError(file, '"features" must map modality names to .npy file names, e.g. {"text": "all-MiniLM-L6-v2.npy"}');
  for (const [name, v] of Object.entries(f)) {
    if (!NAME_RE.test(name)) throw new DataFileError(file, `"features": modality name "${name}" must be letters, digits, '_', '-' or '.'`);
    if (typeof v !== 'string' || v === '') throw new DataFileError(file, `"features"."${name}" must be a file name`);
  }
  return f as Record<string, string>;
}
