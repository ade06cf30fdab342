import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../trainer/engine/backend.js';
import { evaluate } from '../trainer/eval.js';
import type { Csr, Dataset } from '../data/dataset.js';

await initEngine('wasm');

function csr(rows: number[][]): Csr {
  const indptr = new Int32Array(rows.length + 1);
  rows.forEach((r, i) => (indptr[i + 1] = indptr[i] + r.length));
  return { indptr, indices: Int32Array.from(rows.flat()) };
}

/** 1-d embeddings: item j scores (j+1) for every user, so the ranking is items 5,4,3,… */
function tiny(train: number[][], val: number[][], test: number[][]): { data: Dataset; u: Float32Array; i: Float32Array } {
  const nItems = 6;
  const empty = { users: new Int32Array(), items: new Int32Array(), rank: new Int32Array() };
  const data = {
    name: 't', dir: '.', hash: '', nUsers: train.length, nItems,
    train: empty, val: empty, test: empty,
    trainByUser: csr(train), valByUser: csr(val), testByUser: csr(test),
    itemPopularity: new Int32Array(nItems), modalities: [], order: 'file',
  } as Dataset;
  return { data, u: new Float32Array(train.length).fill(1), i: Float32Array.from({ length: nItems }, (_, j) => j + 1) };
}

test('recall and NDCG by hand, with train and validation items masked for test', () => {
  // user 0: train {5}, val {4}, test {3, 0}: masked ranking is 3,2,1,0 → hits at ranks 1 and 4
  // user 1: no test items → not counted
  // user 2: train {}, test {5}: rank 1
  const { data, u, i } = tiny([[5], [1], []], [[4], [], []], [[0, 3], [], [5]]);
  const m = evaluate(u, i, 1, data, { split: 'test', ks: [1, 4] });
  assert.equal(m.users, 2);
  assert.ok(Math.abs(m['recall@1'] - (0.5 + 1) / 2) < 1e-9);
  assert.ok(Math.abs(m['recall@4'] - (1 + 1) / 2) < 1e-9);
  const ndcg4u0 = (1 + 1 / Math.log2(5)) / (1 + 1 / Math.log2(3));
  assert.ok(Math.abs(m['ndcg@4'] - (ndcg4u0 + 1) / 2) < 1e-9, `ndcg@4 ${m['ndcg@4']}`);
  assert.ok(Math.abs(m['ndcg@1'] - 1) < 1e-9);
});

test('validation masks only train items', () => {
  // user 0: train {5}, val {4}: 4 ranks first once 5 is masked
  const { data, u, i } = tiny([[5]], [[4]], [[0]]);
  const m = evaluate(u, i, 1, data, { split: 'val', ks: [1] });
  assert.equal(m['recall@1'], 1);
  // without masking train, item 5 would take rank 1: check it is the mask that does it
  const { data: d2 } = tiny([[]], [[4]], [[0]]);
  assert.equal(evaluate(u, i, 1, d2, { split: 'val', ks: [1] })['recall@1'], 0);
});

test('K larger than the catalog is cut to the catalog', () => {
  const { data, u, i } = tiny([[]], [[1]], [[2]]);
  const m = evaluate(u, i, 1, data, { split: 'test', ks: [50] });
  assert.equal(m['recall@50'], 1);
});
