import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topK } from '../core/topk.js';
import { Rng } from '../core/rng.js';

/** Reference: full sort by score desc, index asc; -Inf and NaN excluded. */
function reference(s: number[], k: number): number[] {
  return s
    .map((v, i) => [v, i] as const)
    .filter(([v]) => v !== -Infinity && !Number.isNaN(v))
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);
}

test('topK matches a full sort, with ties broken by lower index', () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + rng.int(60);
    const k = 1 + rng.int(70);
    // few distinct values so that ties are common
    const s = Array.from({ length: n }, () => (rng.next() < 0.1 ? -Infinity : rng.int(8)));
    const buf = new Float32Array([99, ...s, 99]); // offset 1, padding on both sides
    const out = new Int32Array(k);
    const got = topK(buf, 1, n, k, out);
    assert.deepEqual([...out.subarray(0, got)], reference(s, k), `n=${n} k=${k}`);
  }
});

test('topK skips NaN and returns fewer when fewer are finite', () => {
  const out = new Int32Array(5);
  const got = topK(new Float32Array([NaN, 1, -Infinity, 3]), 0, 4, 5, out);
  assert.equal(got, 2);
  assert.deepEqual([...out.subarray(0, 2)], [3, 1]);
});
