/** A dataset folder's ids.json (external id per row): loaded, hashed, and refused with the file named when it does not fit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../data/dataset.js';
import { DataFileError } from '../core/errors.js';

const root = mkdtempSync(join(tmpdir(), 'dataset-ids-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

function folder(name: string, ids?: unknown): string {
  const dir = join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const rows = ['userID\titemID\tx_label', '0\t0\t0', '0\t1\t1', '1\t1\t0', '1\t2\t2', '2\t0\t0', '2\t2\t1', '1\t0\t2'];
  writeFileSync(join(dir, 'd.inter'), rows.join('\n') + '\n');
  if (ids !== undefined) writeFileSync(join(dir, 'ids.json'), typeof ids === 'string' ? ids : JSON.stringify(ids));
  return dir;
}

test('ids.json names the rows and enters the hash; without it ids are row numbers', () => {
  const plain = loadDataset(folder('plain'));
  assert.equal(plain.ids, undefined);
  const named = loadDataset(folder('named', { users: ['alice', 'bob', 'u-3'], items: ['sku-a', 'sku-b', 'sku-c'] }));
  assert.deepEqual(named.ids?.users, ['alice', 'bob', 'u-3']);
  assert.notEqual(named.hash, plain.hash);
});

test('an ids.json that does not fit the rows is refused naming the file', () => {
  const cases: [unknown, RegExp][] = [
    ['{not json', /ids\.json: not valid JSON/],
    [{ users: ['a', 'b'], items: ['x', 'y', 'z'] }, /ids\.json: "users" holds 2 ids for 3 users rows/],
    [{ users: ['a', 'b', 'a'], items: ['x', 'y', 'z'] }, /ids\.json: users\[2\]: id "a" appears twice/],
    [{ users: ['a', 'b', 3], items: ['x', 'y', 'z'] }, /ids\.json: users\[2\] is not a non-empty string/],
    [{ users: ['a', 'b', 'c'] }, /ids\.json: "items" must be an array/],
  ];
  for (const [ids, re] of cases) {
    assert.throws(() => loadDataset(folder('bad', ids)), (e: unknown) => e instanceof DataFileError && re.test(e.message), String(re));
  }
});
