/** The loader's time order (timestamp column, stable; else file order), userSequences, truncation and training windows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../data/dataset.js';
import { SequenceWindows, lastItems, padLeft, userSequences } from '../data/sequences.js';
import type { Csr } from '../core/csr.js';
import { Rng } from '../core/rng.js';
import { assertDataError } from '../test-support/data-error.js';
import { writeSequentialDataset } from '../test-support/sequential-data.js';

const root = mkdtempSync(join(tmpdir(), 'sequences-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let n = 0;
function dataset(lines: string[]): string {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'x.inter'), lines.join('\n') + '\n');
  return dir;
}
const rows = (c: Csr) => Array.from({ length: c.indptr.length - 1 }, (_, u) => Array.from(c.indices.subarray(c.indptr[u], c.indptr[u + 1])));

test('a timestamp column orders each user stably across splits; repeats are kept', () => {
  const d = loadDataset(
    dataset([
      'userID\titemID\tx_label\ttimestamp',
      '0\t4\t2\t30',
      '0\t1\t0\t10',
      '1\t2\t0\t5',
      '0\t3\t0\t10', // same time as item 1: file order decides (1 before 3)
      '0\t1\t1\t20.5', // a repeat, fractional time
      '1\t0\t1\t1e1',
      '1\t3\t2\t11',
    ]),
  );
  assert.equal(d.order, 'timestamp');
  assert.deepEqual(rows(userSequences(d, 0)), [[1, 3], [2]]);
  assert.deepEqual(rows(userSequences(d, 1)), [[1, 3, 1], [2, 0]]);
  assert.deepEqual(rows(userSequences(d, 2)), [[1, 3, 1, 4], [2, 0, 3]]);
});

test('without a timestamp column the order is the file order of each user’s lines', () => {
  const d = loadDataset(dataset(['userID\titemID\tx_label', '1\t2\t0', '0\t4\t2', '0\t3\t0', '1\t1\t2', '0\t0\t1', '0\t3\t0', '1\t0\t1']));
  assert.equal(d.order, 'file');
  assert.deepEqual(rows(userSequences(d, 2)), [[4, 3, 0, 3], [2, 1, 0]]);
  assert.deepEqual(rows(userSequences(d, 0)), [[3, 3], [2]]);
});

test('a timestamp that is not a number is refused naming file and line', () => {
  const dir = dataset(['userID\titemID\tx_label\ttimestamp', '0\t1\t0\t10', '0\t2\t1\tyesterday', '0\t3\t2\t12']);
  assertDataError(() => loadDataset(dir), 'x.inter', 'line 3', 'timestamp "yesterday" is not a number');
  const empty = dataset(['userID\titemID\tx_label\ttimestamp', '0\t1\t0\t', '0\t2\t1\t2', '0\t3\t2\t3']);
  assertDataError(() => loadDataset(empty), 'line 2', 'timestamp "" is not a number');
});

test('shuffled lines with timestamps give the generator’s sequences back', () => {
  const dir = join(root, 'shuffled');
  const seqs = writeSequentialDataset(dir, { users: 20, items: 15, minLen: 3, maxLen: 9, seed: 7, timestamps: true });
  const d = loadDataset(dir);
  assert.equal(d.order, 'timestamp');
  assert.deepEqual(rows(userSequences(d, 2)), seqs);
  assert.deepEqual(rows(userSequences(d, 1)), seqs.map((s) => s.slice(0, -1)));
});

test('sequences longer than max_len are truncated to their most recent items; padding is on the left', () => {
  const seq: Csr = { indptr: Int32Array.from([0, 5, 6, 6]), indices: Int32Array.from([1, 2, 3, 4, 5, 7]) };
  assert.deepEqual(Array.from(lastItems(seq, 0, 3)), [3, 4, 5]);
  assert.deepEqual(Array.from(lastItems(seq, 1, 3)), [7]);
  const p = padLeft(seq, [0, 1, 2], 3, 9);
  assert.equal(p.width, 3);
  assert.deepEqual(Array.from(p.rows), [3, 4, 5, 9, 9, 7, 9, 9, 9]);
  // a batch is only as wide as its longest (truncated) sequence
  assert.equal(padLeft(seq, [1], 3, 9).width, 1);
});

test('training windows: input = prefix without its last item, target = the next item, cut to max_len, users with <2 items skipped', () => {
  const seq: Csr = { indptr: Int32Array.from([0, 5, 6, 8]), indices: Int32Array.from([1, 2, 3, 4, 5, 7, 6, 0]) };
  const w = new SequenceWindows(seq, 3, 9, new Rng(1));
  assert.equal(w.size, 2); // user 1 has a single item
  const b = w.batch(0, 2);
  assert.equal(b.width, 3);
  assert.deepEqual(Array.from(b.inputs), [2, 3, 4, 9, 9, 6]);
  assert.deepEqual(Array.from(b.targets), [3, 4, 5, 9, 9, 0]);
  w.shuffle();
  const again = w.batch(0, 2);
  assert.deepEqual(new Set([again.inputs[2], again.inputs[5]]), new Set([4, 6]));
});
