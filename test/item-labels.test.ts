/** Issue 18, item labels: the `<name>.item` file (errors name file and line) and the bundle's item_labels.json check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../data/dataset.js';
import { DataFileError } from '../core/errors.js';
import { BundleCheckError, checkCatalogState, checkItemLabels } from '../repository/bundle-check.js';

const root = mkdtempSync(join(tmpdir(), 'item-labels-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

function folder(name: string, item: string): string {
  const dir = join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(join(dir, 'd.inter'), ['userID\titemID\tx_label', 'a\tsku-1\t0', 'a\tsku-2\t1', 'b\tsku-3\t2'].join('\n') + '\n');
  writeFileSync(join(dir, 'd.item'), item);
  return dir;
}

test('<name>.item: comma-separated labels by item id, spaces inside kept', () => {
  const d = loadDataset(folder('ok', 'itemID\tlabels\nsku-2\tshoes, running shoes ,red\nsku-1\t\n'));
  assert.deepEqual(d.itemLabels?.get(1), ['shoes', 'running shoes', 'red']);
  assert.deepEqual(d.itemLabels?.get(0), []);
  assert.equal(d.itemLabels?.has(2), false);
});

test('<name>.item: bad lines are refused naming the file and line', () => {
  const cases: [string, RegExp][] = [
    ['item\tlabels\n', /d\.item line 1: header must be/],
    ['itemID\tlabels\nsku-9\tx\n', /d\.item line 2: itemID "sku-9" is not an item/],
    ['itemID\tlabels\nsku-1\tx\nsku-1\ty\n', /d\.item line 3: itemID "sku-1" appears on two lines/],
    ['itemID\tlabels\nsku-1\tx,,y\n', /d\.item line 2: label 2 "" is empty/],
    [`itemID\tlabels\nsku-1\t${'z'.repeat(65)}\n`, /d\.item line 2: label 1 .* is longer than 64/],
    [`itemID\tlabels\nsku-1\t${Array.from({ length: 101 }, (_, i) => `l${i}`).join(',')}\n`, /d\.item line 2: 101 labels/],
    ['itemID\tlabels\nsku-1\tx\ty\n', /d\.item line 2: has 3 columns/],
  ];
  for (const [text, re] of cases) assert.throws(() => loadDataset(folder('bad', text)), (e: unknown) => e instanceof DataFileError && re.test(e.message), String(re));
});

test('item_labels.json: rows ascending in range, labels by the same rule', () => {
  assert.deepEqual(checkItemLabels(JSON.stringify({ rows: [0, 4], labels: [['a'], ['b', 'c']] }), 5).get(4), ['b', 'c']);
  const bad: [unknown, RegExp][] = [
    [{ rows: [0], labels: [] }, /1 rows but 0 label lists/],
    [{ rows: [2, 1], labels: [['a'], ['b']] }, /rows\[1\] = 1: rows must be ascending/],
    [{ rows: [5], labels: [['a']] }, /rows\[0\] = 5/],
    [{ rows: [0], labels: [['a,b']] }, /labels\[0\]\[0\] holds a comma/],
    [{ rows: [0], labels: [[3]] }, /labels\[0\]\[0\] is not a string/],
  ];
  for (const [o, re] of bad) assert.throws(() => checkItemLabels(JSON.stringify(o), 5), (e: unknown) => e instanceof BundleCheckError && /item_labels\.json/.test(e.message) && re.test(e.message), String(re));
  assert.throws(() => checkItemLabels('{', 5), /item_labels\.json: not valid JSON/);
});

test('catalog_state.json: deleted items and dislikes by id, every item one of the bundle\'s', () => {
  const index = new Map([['a', 0], ['b', 1], ['c', 2]]);
  assert.deepEqual(checkCatalogState(JSON.stringify({ hidden: ['c'], dislikes: [['u1', ['a', 'b']]] }), index), { hidden: [2], dislikes: [['u1', [0, 1]]] });
  assert.throws(() => checkCatalogState(JSON.stringify({ hidden: ['zz'], dislikes: [] }), index), /catalog_state\.json.*hidden\[0\] = "zz" is not an item of this bundle/);
  assert.throws(() => checkCatalogState(JSON.stringify({ hidden: [], dislikes: [['u1', 'a']] }), index), /dislikes\[0\] must be \[user id, \[item ids\]\]/);
  assert.throws(() => checkCatalogState('{"hidden": 1}', index), /expected \{"hidden"/);
  assert.throws(() => checkCatalogState('{', index), /not valid JSON/);
});
