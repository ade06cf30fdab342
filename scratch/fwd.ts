import { initEngine, tf } from '../trainer/engine.js';
await initEngine('wasm');
const N = 16018, d = 64, B = 2048;
const E = tf.variable(tf.randomNormal([N, d]));
const F = tf.randomNormal([N, d]) as tf.Tensor2D;
const rows = new Int32Array(3 * B).map((_, i) => (i * 7919) % N);
const T = (name: string, f: () => tf.Tensor | tf.Tensor[]) => { const t = performance.now(); const r = f(); (Array.isArray(r) ? r : [r]).forEach((x) => x.dataSync()); console.log(name.padEnd(12), (performance.now() - t).toFixed(2)); tf.dispose(r); };
for (let i = 0; i < 3; i++) {
  T('add', () => tf.add(F, F));
  T('mul', () => tf.mul(F, 0.3));
  T('tensor1d', () => tf.tensor1d(rows, 'int32'));
  const idx = tf.tensor1d(rows, 'int32');
  T('gather', () => tf.gather(F, idx));
  const all = tf.gather(F, idx);
  T('split', () => tf.split(all, 3, 0));
  T('gatherVar', () => tf.gather(E, idx));
  const [a, b, c] = tf.split(all, 3, 0);
  T('bpr', () => tf.mean(tf.softplus(tf.neg(tf.sum(tf.mul(a, tf.sub(b, c)), 1)))));
  T('l2', () => tf.sum(tf.square(all)));
  T('segsum', () => tf.unsortedSegmentSum(all, idx, N));
  T('transpose', () => tf.transpose(F, [0, 1]));
}
