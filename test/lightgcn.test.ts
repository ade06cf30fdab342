/**
 * LightGCN's loss and gradient on the tfjs engine against a plain float64 transcription of
 * the yardstick's numpy step (propagation, BPR, L2 on the batch ego rows).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { LightGcn } from '../trainer/models/lightgcn.js';
import { normalizedAdjacency } from '../data/graph.js';
import type { Csr } from '../data/dataset.js';
import { Rng } from '../core/rng.js';
import { BprSampler, csrHas } from '../data/sampler.js';

await initEngine('wasm');

const nUsers = 4;
const nItems = 5;
const train: number[][] = [[0, 2], [1], [2, 3, 4], [0, 4]];
const trainByUser: Csr = {
  indptr: Int32Array.from([0, 2, 3, 6, 8]),
  indices: Int32Array.from(train.flat()),
};

test('normalised adjacency is symmetric with weights 1/sqrt(deg_u·deg_i)', () => {
  const g = normalizedAdjacency(nUsers, nItems, trainByUser);
  const n = nUsers + nItems;
  const A = Array.from({ length: n }, () => new Float64Array(n));
  for (let r = 0; r < n; r++) for (let k = g.indptr[r]; k < g.indptr[r + 1]; k++) A[r][g.indices[k]] = g.values[k];
  const deg = (v: number) => (v < nUsers ? train[v].length : train.filter((t) => t.includes(v - nUsers)).length);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      assert.equal(A[r][c], A[c][r]);
      const edge = r < nUsers && c >= nUsers && train[r].includes(c - nUsers);
      if (edge) assert.ok(Math.abs(A[r][c] - 1 / Math.sqrt(deg(r) * deg(c))) < 1e-7);
      else if (!(c < nUsers && r >= nUsers)) assert.equal(A[r][c], 0);
    }
  }
});

test('BPR loss and gradient match the reference step', async () => {
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const dim = 4;
    const layers = 2;
    const reg = 0.1;
    const g = normalizedAdjacency(nUsers, nItems, trainByUser);
    const model = new LightGcn({ nUsers, nItems, dim, layers }, g, { seed: 3, std: 0.5 });
    const E0 = Array.from(model.egoValues());
    const t = { users: Int32Array.from([0, 2, 3, 0]), pos: Int32Array.from([2, 3, 4, 0]), neg: Int32Array.from([1, 0, 1, 3]) };
    const { value, grads } = tf.variableGrads(() => model.bprLoss(t, reg), [model.ego]);
    const ref = referenceStep(E0, g, dim, layers, reg, t);
    assert.ok(Math.abs(value.dataSync()[0] - ref.loss) < 1e-5, `${backend}: loss ${value.dataSync()[0]} vs ${ref.loss}`);
    const got = grads[model.ego.name].dataSync();
    for (let i = 0; i < ref.grad.length; i++) assert.ok(Math.abs(got[i] - ref.grad[i]) < 1e-5, `${backend}: grad[${i}] ${got[i]} vs ${ref.grad[i]}`);
    model.dispose();
  }
  await tf.setBackend('wasm');
});

/** The yardstick's numpy step, transcribed in float64. */
function referenceStep(E0: number[], g: ReturnType<typeof normalizedAdjacency>, d: number, L: number, reg: number, t: { users: Int32Array; pos: Int32Array; neg: Int32Array }) {
  const n = nUsers + nItems;
  const spmm = (X: number[]) => {
    const out = new Array<number>(n * d).fill(0);
    for (let r = 0; r < n; r++) for (let k = g.indptr[r]; k < g.indptr[r + 1]; k++) for (let c = 0; c < d; c++) out[r * d + c] += g.values[k] * X[g.indices[k] * d + c];
    return out;
  };
  const prop = (X: number[]) => {
    const out = [...X];
    let h = X;
    for (let l = 0; l < L; l++) {
      h = spmm(h);
      for (let i = 0; i < out.length; i++) out[i] += h[i];
    }
    return out.map((v) => v / (L + 1));
  };
  const F = prop(E0);
  const B = t.users.length;
  const row = (M: number[], r: number) => M.slice(r * d, (r + 1) * d);
  let loss = 0;
  const G = new Array<number>(n * d).fill(0);
  const rows: number[] = [];
  for (let b = 0; b < B; b++) {
    const u = t.users[b];
    const i = nUsers + t.pos[b];
    const j = nUsers + t.neg[b];
    rows.push(u, i, j);
    const eu = row(F, u);
    const ei = row(F, i);
    const ej = row(F, j);
    const x = eu.reduce((s, v, c) => s + v * (ei[c] - ej[c]), 0);
    loss += Math.log1p(Math.exp(-x)) / B;
    const coef = -1 / (1 + Math.exp(x)) / B;
    for (let c = 0; c < d; c++) {
      G[u * d + c] += coef * (ei[c] - ej[c]);
      G[i * d + c] += coef * eu[c];
      G[j * d + c] -= coef * eu[c];
    }
  }
  const grad = prop(G); // Â is symmetric, so back-propagation is the same propagation
  for (const r of rows) {
    for (let c = 0; c < d; c++) {
      loss += (reg / (2 * B)) * E0[r * d + c] ** 2;
      grad[r * d + c] += (reg * E0[r * d + c]) / B;
    }
  }
  return { loss, grad };
}

test('negatives are never in the user train set', () => {
  const users = Int32Array.from(train.flatMap((items, u) => items.map(() => u)));
  const items = Int32Array.from(train.flat());
  const s = new BprSampler(users, items, trainByUser, nItems, new Rng(1));
  for (let rep = 0; rep < 50; rep++) {
    s.shuffle();
    const b = s.batch(0, s.size);
    assert.equal(b.users.length, items.length);
    for (let k = 0; k < b.users.length; k++) {
      assert.ok(!csrHas(trainByUser, b.users[k], b.neg[k]), `user ${b.users[k]} got train item ${b.neg[k]} as negative`);
      assert.ok(csrHas(trainByUser, b.users[k], b.pos[k]));
    }
  }
});
