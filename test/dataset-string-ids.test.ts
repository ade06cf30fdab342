/** String ids in a dataset's .inter (issue 18): hashes and SKUs become rows; integer ids keep row = id; bad ids name the line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../data/dataset.js';
import { DataFileError } from '../core/errors.js';
import { writeNpy } from '../core/npy.js';
import { hashedDataset } from '../test-support/hashed-data.js';

const root = mkdtempSync(join(tmpdir(), 'dataset-string-ids-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));


function inter(name: string, lines: string[], extra?: (dir: string) => void): string {
  const dir = join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(join(dir, 'd.inter'), ['userID\titemID\tx_label', ...lines].join('\n') + '\n');
  extra?.(dir);
  return dir;
}

test('hash ids: rows in first-seen order, ids names every row, the splits keep their pairs', () => {
  const { rows, dir } = hashedDataset(join(root, 'hashed'));
  const d = loadDataset(dir);
  const firstSeen = (k: 0 | 1) => [...new Set(rows.map((r) => r[k]))];
  assert.deepEqual(d.ids?.users, firstSeen(0));
  assert.deepEqual(d.ids?.items, firstSeen(1));
  assert.equal(d.nUsers, firstSeen(0).length);
  assert.equal(d.nItems, firstSeen(1).length);
  // every interaction is where its ids say
  const pairs = (x: { users: Int32Array; items: Int32Array }) => Array.from(x.users, (u, n) => `${d.ids!.users[u]}|${d.ids!.items[x.items[n]]}`);
  assert.deepEqual(pairs(d.train), rows.filter((r) => r[2] === 0).map((r) => `${r[0]}|${r[1]}`));
  assert.deepEqual(pairs(d.test), rows.filter((r) => r[2] === 2).map((r) => `${r[0]}|${r[1]}`));
});

test('integer ids keep row = id; one string id makes that side strings, the other side stays integer', () => {
  const plain = loadDataset(inter('ints', ['0\t2\t0', '1\t0\t1', '2\t1\t2']));
  assert.equal(plain.ids, undefined);
  assert.deepEqual(Array.from(plain.train.items), [2]);
  const mixed = loadDataset(inter('mixed', ['5\tsku-9\t0', 'alice\tsku-1\t1', '5\tsku-1\t2']));
  assert.deepEqual(mixed.ids?.users, ['5', 'alice']);
  assert.deepEqual(mixed.ids?.items, ['sku-9', 'sku-1']);
  const itemsOnly = loadDataset(inter('items-only', ['0\tsku-9\t0', '1\tsku-1\t1', '1\tsku-9\t2']));
  assert.deepEqual(itemsOnly.ids?.users, ['0', '1']);
  assert.deepEqual(itemsOnly.ids?.items, ['sku-9', 'sku-1']);
  // too large for a row number: a string id, not an error
  const big = loadDataset(inter('big', ['99999999999\t0\t0', '1\t0\t1', '1\t0\t2']));
  assert.deepEqual(big.ids?.users, ['99999999999', '1']);
});

test('with ids.json the string ids take its rows (the feature files\' order); an id it lacks names the line', () => {
  const withIds = (name: string, lines: string[]) =>
    inter(name, lines, (dir) => {
      writeFileSync(join(dir, 'ids.json'), JSON.stringify({ users: ['bob', 'alice'], items: ['x', 'y', 'z'] }));
      writeNpy(join(dir, 'image_feat.npy'), new Float32Array(6).map((_, i) => i), [3, 2]);
    });
  const d = loadDataset(withIds('ids', ['alice\tz\t0', 'bob\tx\t1', 'alice\tx\t2']));
  assert.deepEqual(d.ids, { users: ['bob', 'alice'], items: ['x', 'y', 'z'] });
  assert.deepEqual(Array.from(d.train.users), [1]);
  assert.deepEqual(Array.from(d.train.items), [2]);
  assert.equal(d.nItems, 3, 'an item of ids.json without interactions keeps its row');
  assert.throws(() => loadDataset(withIds('ids-bad', ['alice\tz\t0', 'carol\tx\t1', 'alice\tx\t2'])), (e: unknown) => e instanceof DataFileError && /d\.inter.*line 3.*userID "carol" is not in ids\.json/.test(e.message));
});

test('bad string ids are refused naming the file and line', () => {
  const cases: [string, RegExp][] = [
    ['a'.repeat(257), /line 3.*userID "a+…" is longer than 256 characters/],
    ['bad\u0001id', /line 3.*userID .* holds a control character/],
    ['bad\u0085id', /line 3.*userID .* holds a control character/],
  ];
  for (const [id, re] of cases) {
    assert.throws(() => loadDataset(inter('bad', ['u1\t0\t0', `${id}\t1\t1`, 'u1\t1\t2'])), (e: unknown) => e instanceof DataFileError && re.test(e.message), String(re));
  }
  assert.throws(() => loadDataset(inter('empty', ['u1\t0\t0', ' \t1\t1', 'u1\t1\t2'])), (e: unknown) => e instanceof DataFileError && /line 3.*userID is empty/.test(e.message));
  const ok = loadDataset(inter('long-ok', ['u1\t0\t0', `${'b'.repeat(256)}\t1\t1`, 'u1\t1\t2']));
  assert.equal(ok.ids?.users[1].length, 256);
});
