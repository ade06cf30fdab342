/** A dataset whose user and item ids are hex hashes (issue 18's string ids), for tests. */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeNpy } from '../core/npy.js';

export const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

/**
 * `users` users with 4 distinct items each (2 train, 1 validation, 1 test), ids `u-<hash>` and
 * `<hash>`; with `featureDim`, an image_feat.npy whose rows follow the items' first-seen order.
 */
export function hashedDataset(dir: string, users = 12, items = 9, seed = 1, featureDim = 0): { rows: [string, string, number][]; dir: string; items: string[] } {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const rows: [string, string, number][] = [];
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2147483648), x);
  for (let u = 0; u < users; u++) {
    const picks = new Set<number>();
    while (picks.size < 4) picks.add(next() % items);
    [...picks].forEach((i, n) => rows.push([`u-${hash(`user${u}`)}`, hash(`item${i}`), n < 2 ? 0 : n === 2 ? 1 : 2]));
  }
  writeFileSync(join(dir, 'h.inter'), ['userID\titemID\tx_label', ...rows.map((r) => r.join('\t'))].join('\n') + '\n');
  const firstSeen = [...new Set(rows.map((r) => r[1]))];
  if (featureDim) writeNpy(join(dir, 'image_feat.npy'), Float32Array.from({ length: firstSeen.length * featureDim }, (_, i) => Math.sin(i * 0.37 + seed)), [firstSeen.length, featureDim]);
  return { rows, dir, items: firstSeen };
}

