/** The distillation losses against their definitions on small hand-made inputs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { pairKd, listKd, embKd } from '../trainer/models/kd.js';

await initEngine('wasm');
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${a} vs ${b}`);

test('PairKD is the mean Bernoulli KL of the pairwise probabilities', () => {
  const xT = [2, -1, 0.5];
  const xS = [0.3, 0.2, -2];
  const ref = xT.reduce((s, t, i) => {
    const p = sig(t);
    const q = sig(xS[i]);
    return s + (p * Math.log(p / q) + (1 - p) * Math.log((1 - p) / (1 - q))) / xT.length;
  }, 0);
  close(pairKd(tf.tensor1d(xT), tf.tensor1d(xS)).dataSync()[0], ref);
  assert.equal(pairKd(tf.tensor1d(xT), tf.tensor1d(xT)).dataSync()[0], 0);
});

const zT = [[3, 1, 0.5, -1], [0, 2, 1, 1]];
const zS = [[1, 1, 0, 0.5], [0.5, -1, 2, 0]];

function plainKl(t: number[][], s: number[][], tau: number): number {
  const sm = (z: number[]) => {
    const e = z.map((v) => Math.exp(v / tau));
    const sum = e.reduce((a, b) => a + b);
    return e.map((v) => v / sum);
  };
  return (t.reduce((acc, row, i) => {
    const p = sm(row);
    const q = sm(s[i]);
    return acc + p.reduce((a, pv, j) => a + pv * Math.log(pv / q[j]), 0);
  }, 0) / t.length) * tau * tau;
}

test('ListKD without disentangling is the list-wise KL, scaled by τ²', () => {
  for (const tau of [1, 2]) {
    const v = listKd(tf.tensor2d(zT), tf.tensor2d(zS), { temperature: tau, disentangle: false, binaryWeight: 1 }).dataSync()[0];
    close(v, plainKl(zT, zS, tau));
  }
});

test('disentangled ListKD with binary weight 1 recovers the plain KL (KL = KL_b + b−·KL_q)', () => {
  const v = listKd(tf.tensor2d(zT), tf.tensor2d(zS), { temperature: 1.5, disentangle: true, binaryWeight: 1 }).dataSync()[0];
  close(v, plainKl(zT, zS, 1.5), 1e-4);
  // and a larger binary weight adds exactly (w − 1)·KL_b
  const w3 = listKd(tf.tensor2d(zT), tf.tensor2d(zS), { temperature: 1.5, disentangle: true, binaryWeight: 3 }).dataSync()[0];
  assert.ok(w3 > v);
  assert.equal(listKd(tf.tensor2d(zT), tf.tensor2d(zT), { temperature: 1, disentangle: true, binaryWeight: 2 }).dataSync()[0] < 1e-6, true);
});

test('ListKD sends gradient to both sides but not through the b− weight', () => {
  const t = tf.tensor2d(zT);
  const s = tf.tensor2d(zS);
  const [gt, gs] = tf.grads((a: tf.Tensor, b: tf.Tensor) => listKd(a as tf.Tensor2D, b as tf.Tensor2D, { temperature: 1, disentangle: true, binaryWeight: 2 }))([t, s]);
  for (const g of [gt, gs]) for (const v of g.dataSync()) assert.ok(Number.isFinite(v));
  assert.ok(gs.abs().sum().dataSync()[0] > 0 && gt.abs().sum().dataSync()[0] > 0);
});

test('EmbKD is the mean of (1 − cos)^γ', () => {
  const a = [[1, 0], [1, 1], [0, 2]];
  const b = [[1, 0], [-1, 1], [0, -1]];
  const cos = [1, 0, -1];
  for (const g of [1, 2, 3]) close(embKd(tf.tensor2d(a), tf.tensor2d(b), g).dataSync()[0], cos.reduce((s, c) => s + (1 - c) ** g, 0) / 3);
});
