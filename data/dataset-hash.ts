/**
 * A dataset's two content hashes and the check of a checkpoint against them. The interactions
 * (the `.inter` file and `ids.json`) and the feature files are hashed separately, because an
 * ID-only student depends only on the first: evaluating or exporting it against a folder whose
 * features changed (or were renamed, or are absent) is harmless, resuming a teacher is not.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** What a checkpoint records of the dataset it was trained on. */
export interface DatasetHashes {
  /** sha256 hex of the interactions (before the split hashes existed: of every data file) */
  hash: string;
  /** sha256 hex of the feature files by modality name; absent in checkpoints older than the split */
  featuresHash?: string;
}

/** sha256 over the `.inter` bytes, then ids.json's when the folder has one. */
export function interactionsHash(inter: Buffer, ids: Buffer | null): string {
  const h = createHash('sha256').update(inter);
  if (ids) h.update('\0ids.json\0').update(ids);
  return h.digest('hex');
}

/** sha256 over each modality's name and bytes, in name order: renaming a modality changes it. */
export function featuresHash(features: { name: string; bytes: Buffer }[]): string {
  const h = createHash('sha256');
  for (const f of [...features].sort((a, b) => (a.name < b.name ? -1 : 1))) h.update(`${f.name}\0${f.bytes.length}\0`).update(f.bytes);
  return h.digest('hex');
}

/**
 * Why a checkpoint does not fit a dataset, or null when it does. `need` is what the model
 * reads: an ID-only student the interactions, a teacher (and a stage resumed with one) also
 * the features. The message says which part differs.
 */
export function hashMismatch(
  trained: DatasetHashes & { name: string },
  data: { name: string; dir: string; hash: string; featuresHash?: string },
  need: 'interactions' | 'all',
): string | null {
  if (trained.featuresHash === undefined) {
    // A checkpoint from before the split: one hash over every data file of the folder.
    return trained.hash === legacyHash(data.dir) ? null : `was trained on dataset ${trained.name} (hash ${short(trained.hash)}, over all its files), and ${data.dir} differs from it (retrain, or evaluate against the original folder)`;
  }
  if (trained.hash !== data.hash) {
    return `was trained on dataset ${trained.name} whose interactions (.inter, ids.json) have hash ${short(trained.hash)}, but those of ${data.dir} have hash ${short(data.hash)}`;
  }
  if (need === 'all') {
    if (data.featuresHash === undefined) throw new Error('hashMismatch: the dataset was loaded without its features');
    if (trained.featuresHash !== data.featuresHash) {
      return `was trained on dataset ${trained.name} with feature files of hash ${short(trained.featuresHash)}; the interactions of ${data.dir} match but its feature files (hash ${short(data.featuresHash)}) differ`;
    }
  }
  return null;
}

const short = (h: string) => h.slice(0, 12);

/** The hash checkpoints carried before the split: sha256 over the .inter, *_feat.npy and ids.json bytes, in file-name order. */
function legacyHash(dir: string): string {
  const h = createHash('sha256');
  const names = readdirSync(dir)
    .filter((n) => n.endsWith('.inter') || /_feat\.npy$/.test(n) || n === 'ids.json')
    .sort();
  for (const n of names) h.update(readFileSync(join(dir, n)));
  return h.digest('hex');
}
