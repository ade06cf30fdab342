/**
 * Small sequential datasets for the tests: each user walks the catalog mostly one item at a time
 * (next = previous + 1, sometimes a random jump), so the next item follows from the last one while
 * popularity says nothing (the float64 reference forward is repository/sasrec-forward.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../core/rng.js';

export interface SequentialDataOptions {
  users: number;
  items: number;
  /** each user's sequence length is drawn from minLen..maxLen */
  minLen: number;
  maxLen: number;
  seed: number;
  /** add a timestamp column and write the lines shuffled (the loader must sort them back) */
  timestamps?: boolean;
  /** probability of a random jump instead of the next item */
  jump?: number;
}

/** Writes DIR/seq.inter (leave-one-out: last item test, the one before validation); returns each user's sequence. */
export function writeSequentialDataset(dir: string, o: SequentialDataOptions): number[][] {
  const rng = new Rng(o.seed);
  const seqs: number[][] = [];
  const lines: { text: string; key: number }[] = [];
  let t = 1_600_000_000;
  for (let u = 0; u < o.users; u++) {
    const n = o.minLen + rng.int(o.maxLen - o.minLen + 1);
    const s = [rng.int(o.items)];
    while (s.length < n) s.push(rng.next() < (o.jump ?? 0.1) ? rng.int(o.items) : (s[s.length - 1] + 1) % o.items);
    seqs.push(s);
    s.forEach((item, j) => {
      const x = j === n - 1 ? 2 : j === n - 2 ? 1 : 0;
      t += 1 + rng.int(100);
      lines.push({ text: o.timestamps ? `${u}\t${item}\t${x}\t${t}` : `${u}\t${item}\t${x}`, key: rng.next() });
    });
  }
  if (o.timestamps) lines.sort((a, b) => a.key - b.key);
  mkdirSync(dir, { recursive: true });
  const header = o.timestamps ? 'userID\titemID\tx_label\ttimestamp' : 'userID\titemID\tx_label';
  writeFileSync(join(dir, 'seq.inter'), [header, ...lines.map((l) => l.text)].join('\n') + '\n');
  return seqs;
}

