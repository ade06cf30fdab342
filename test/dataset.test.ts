import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { datasetSummary, loadDataset } from '../data/dataset.js';
import { assertDataError } from '../test-support/data-error.js';
import { encodeNpy } from '../core/npy.js';
import { featuresHash } from '../data/dataset-hash.js';

// dist/test/dataset.test.js → repository root is two levels up.
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TIKTOK = resolve(REPO, '..', 'shared', 'data', 'tiktok');

const roots: string[] = [];
process.on('exit', () => roots.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A fresh dataset folder with the given files. */
function folder(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ds-'));
  roots.push(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

function feat(rows: number, dim: number, fill = (i: number) => i / 10, dtype: 'float16' | 'float32' | 'float64' = 'float32'): Buffer {
  return encodeNpy(Float32Array.from({ length: rows * dim }, (_, i) => fill(i)), [rows, dim], dtype);
}


const INTER = ['userID\titemID\tx_label', '0\t3\t0', '0\t1\t0', '0\t3\t0', '0\t2\t1', '2\t0\t0', '2\t1\t2', '1\t1\t0', ''].join('\n');

test('loads a small dataset: ids, splits, CSR, popularity, modalities, hash', () => {
  const dir = folder({ 'toy.inter': INTER, 'image_feat.npy': feat(5, 2), 'audio_feat.npy': feat(5, 3, () => 1, 'float16') });
  const d = loadDataset(dir);
  assert.equal(d.name, 'toy');
  assert.equal(d.nUsers, 3);
  assert.equal(d.nItems, 5); // feature rows exceed max itemID + 1
  assert.deepEqual(Array.from(d.train.users), [0, 0, 0, 2, 1]);
  assert.deepEqual(Array.from(d.train.items), [3, 1, 3, 0, 1]);
  assert.deepEqual(Array.from(d.val.items), [2]);
  assert.deepEqual(Array.from(d.test.users), [2]);
  assert.deepEqual(Array.from(d.trainByUser.indptr), [0, 2, 3, 4]);
  assert.deepEqual(Array.from(d.trainByUser.indices), [1, 3, 1, 0]); // sorted, deduplicated
  assert.deepEqual(Array.from(d.valByUser.indptr), [0, 1, 1, 1]);
  assert.deepEqual(Array.from(d.testByUser.indices), [1]);
  assert.deepEqual(Array.from(d.itemPopularity), [1, 2, 0, 1, 0]);
  assert.deepEqual(d.modalities.map((m) => [m.name, m.dim, m.data.length]), [['audio', 3, 15], ['image', 2, 10]]);
  assert.equal(d.modalities[1].data[3], Math.fround(0.3));
  // The interactions and the features are hashed apart (dataset-hash.ts).
  assert.equal(d.hash, createHash('sha256').update(readFileSync(join(dir, 'toy.inter'))).digest('hex'));
  assert.equal(d.featuresHash, featuresHash(['audio', 'image'].map((m) => ({ name: m, bytes: readFileSync(join(dir, `${m}_feat.npy`)) }))));
  assert.match(datasetSummary(d), /^toy: 3 users, 5 items, interactions train 5 \/ val 1 \/ test 1, modalities audio\(3\) image\(2\)/);
});

test('CRLF, extra columns in any order, blank lines, no trailing newline, BOM', () => {
  const text = '\ufeffrating\tx_label\tuserID\ttimestamp\titemID\r\n5\t0\t1\t99\t2\r\n\r\n4\t1\t0\t98\t0\r\n  \r\n3\t2\t0\t97\t1';
  const d = loadDataset(folder({ 'r.inter': text }));
  assert.equal(d.nUsers, 2);
  assert.equal(d.nItems, 3);
  assert.deepEqual([d.train.users[0], d.train.items[0]], [1, 2]);
  assert.deepEqual([d.val.users[0], d.val.items[0], d.test.items[0]], [0, 0, 1]);
  assert.deepEqual(d.modalities, []);
});

test('features: false skips feature data but keeps nItems and the interactions hash', () => {
  const dir = folder({ 'toy.inter': INTER, 'image_feat.npy': feat(7, 2) });
  const full = loadDataset(dir);
  const lite = loadDataset(dir, { features: false });
  assert.deepEqual(lite.modalities, []);
  assert.equal(lite.nItems, 7);
  assert.equal(lite.hash, full.hash);
  assert.equal(lite.featuresHash, undefined);
  // a caller that knows nItems (a checkpoint) opens no feature file
  assert.equal(loadDataset(dir, { features: false, nItems: 9 }).nItems, 9);
});

test('folder problems', () => {
  const dir = folder({ 'a.txt': 'x' });
  assertDataError(() => loadDataset(join(dir, 'nope')), 'nope', 'not found');
  assertDataError(() => loadDataset(join(dir, 'a.txt')), 'a.txt', 'not a directory');
  assertDataError(() => loadDataset(dir), 'no .inter file');
  assertDataError(() => loadDataset(folder({ 'a.inter': INTER, 'b.inter': INTER })), 'a.inter', 'b.inter', 'more than one');
});

test('malformed .inter files name the file and line', () => {
  const bad = (body: string, ...needles: string[]) => assertDataError(() => loadDataset(folder({ 'tiktok.inter': body })), 'tiktok.inter', ...needles);
  bad('userID\titemID\n0\t1\n', 'line 1', '"x_label"');
  bad('userID itemID x_label\n0 1 0\n', 'line 1', 'tab-separated');
  bad('', 'line 1', 'header');
  bad('userID\titemID\tx_label\n0\t1\t0\n0\t2\n', 'line 3', '2 columns', 'header has 3');
  // Non-integer ids ("abc", "-1", "1.5", 99999999999) are string ids since issue 18 (dataset-string-ids.test.ts); an empty one is not.
  bad('userID\titemID\tx_label\n0\t1\t0\n\n1\t\t1\n', 'line 4', 'itemID is empty');
  bad('userID\titemID\tx_label\n0\t1\t0\n0\t2\t3\n', 'line 3', 'x_label "3"');
  bad('userID\titemID\tx_label\n0\t1\t0\n0\t2\t\n', 'line 3', 'x_label ""');
  bad('userID\titemID\tx_label\n0\t1\t0\n0\t2\t2\n', 'validation', 'empty');
  bad('userID\titemID\tx_label\n0\t1\t1\n0\t2\t2\n', 'train', 'empty');
  bad('userID\titemID\tx_label\n0\t1\t0\n0\t2\t1\n', 'test', 'empty');
});

test('malformed feature files name the file and row', () => {
  const bad = (f: Buffer, ...needles: string[]) =>
    assertDataError(() => loadDataset(folder({ 'toy.inter': INTER, 'image_feat.npy': f })), 'image_feat.npy', ...needles);
  bad(feat(3, 2), '3 rows', '4 items');
  bad(encodeNpy(new Float32Array(8), [4, 2, 1]), '2-D', '(4, 2, 1)');
  bad(feat(6, 2, (i) => (i === 9 ? NaN : 0)), 'row 4', 'NaN or Inf');
  bad(feat(6, 2, (i) => (i === 2 ? Infinity : 0), 'float16'), 'row 1', 'NaN or Inf');
  const int = encodeNpy(new Float32Array(8), [4, 2]);
  int.write("'<i4'", int.indexOf("'<f4'"), 'latin1');
  bad(int, "'<i4'");
  // Two feature files of different lengths: the shorter one is named.
  assertDataError(
    () => loadDataset(folder({ 'toy.inter': INTER, 'image_feat.npy': feat(6, 2), 'audio_feat.npy': feat(5, 2) })),
    'audio_feat.npy',
    '5 rows',
    '6 items',
  );
});

test('real Tiktok dataset', (t) => {
  if (!existsSync(TIKTOK)) {
    t.skip(`${TIKTOK} not present`);
    return;
  }
  const t0 = performance.now();
  const d = loadDataset(TIKTOK);
  const ms = performance.now() - t0;
  t.diagnostic(`loadDataset(tiktok) ${ms.toFixed(0)} ms: ${datasetSummary(d)}`);
  assert.equal(d.name, 'tiktok');
  assert.equal(d.nUsers, 9308);
  assert.equal(d.nItems, 6710);
  assert.deepEqual([d.train.users.length, d.val.users.length, d.test.users.length], [59541, 3051, 6130]);
  assert.deepEqual(d.modalities.map((m) => [m.name, m.dim, m.data.length]), [['audio', 128, 6710 * 128], ['image', 128, 6710 * 128]]);
  assert.equal(d.trainByUser.indptr[d.nUsers], d.trainByUser.indices.length);
  let pop = 0;
  for (const p of d.itemPopularity) pop += p;
  assert.equal(pop, d.trainByUser.indices.length);
});

