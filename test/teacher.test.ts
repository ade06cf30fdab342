/** The multimodal teacher and its soft prompt on a small generated dataset. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { generateSynthetic } from '../data/synthetic.js';
import { loadDataset } from '../data/dataset.js';
import { normalizedAdjacency } from '../data/graph.js';
import { Teacher } from '../trainer/models/teacher.js';
import { TEACHER_DEFAULTS } from '../trainer/stages/teacher.js';
import { fitPca, pcaScores } from '../trainer/models/prompt.js';

await initEngine('wasm');
const root = mkdtempSync(join(tmpdir(), 'teacher-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
generateSynthetic({ dir: root, users: 120, items: 80, seed: 5 });
const data = loadDataset(root);
const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
const shape = { ...TEACHER_DEFAULTS, dim: 8, promptDim: 6 };
const n = data.nUsers + data.nItems;

test('outputs E^T and one F^m per modality over all nodes', () => {
  const t = new Teacher(data, graph, shape, { seed: 1 });
  const out = t.forward(false);
  assert.deepEqual(out.final.shape, [n, 8]);
  assert.equal(out.modal.length, data.modalities.length);
  for (const f of out.modal) assert.deepEqual(f.shape, [n, 8]);
  // stage 2 recomputes only the modality part: same result as the full forward pass
  const id = t.idPart();
  const again = t.forwardModal(id);
  const a = out.final.dataSync();
  const b = again.final.dataSync();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5);
  // and stage 2's linear shortcut (propagate the prompt alone) gives the same F^m
  const s2 = t.frozenForStage2(id);
  const fast = s2.forward();
  for (let m = 0; m < out.modal.length; m++) {
    const x = out.modal[m].dataSync();
    const y = fast.modal[m].dataSync();
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) < 1e-4 * (1 + Math.abs(x[i])), `F^${m}[${i}] ${x[i]} vs ${y[i]}`);
  }
  // over a set of rows (what a KD step reads): exactly those rows of the full outputs, in that order
  const rows = [n - 1, 3, 0, 150, 3];
  const some = s2.forward(tf.tensor1d(rows, 'int32'));
  for (const [full, part] of [[fast.final, some.final], ...fast.modal.map((f, m) => [f, some.modal[m]])]) {
    assert.deepEqual(part.shape, [rows.length, 8]);
    const x = full.arraySync() as number[][];
    const y = part.arraySync() as number[][];
    rows.forEach((r, k) => x[r].forEach((v, c) => assert.ok(Math.abs(v - y[k][c]) < 1e-5, `row ${r} col ${c}: ${v} vs ${y[k][c]}`)));
  }
  s2.dispose();
  t.dispose();
});

test('the prompt shifts the features: (x + λ1·p^m)·W, computed without forming p^m', () => {
  const t = new Teacher(data, graph, { ...shape, promptRate: 0.5, dropout: 0 }, { seed: 1 });
  const off = new Teacher(data, graph, { ...shape, promptRate: 0, dropout: 0, prompt: false }, { seed: 1 });
  // same weights in both but the prompt: copy them over
  t.ownVariables.forEach((v, i) => off.ownVariables[i].assign(v));
  const withP = t.forward(false).modal[0].dataSync();
  const noP = off.forward(false).modal[0].dataSync();
  let diff = 0;
  for (let i = 0; i < withP.length; i++) diff += Math.abs(withP[i] - noP[i]);
  assert.ok(diff > 1e-3, 'the prompt changes F^m');
  // the reformulation equals the definition on the layer-0 item rows
  const x = (t as unknown as { x: tf.Tensor2D[] }).x[0];
  const p0 = t.prompt!.modalityPrompts()[0];
  const direct = tf.add(tf.matMul(tf.add(x, tf.mul(p0, 0.5)), t.w[0]), t.b[0]).dataSync();
  const via = tf.add(tf.add(tf.matMul(x, t.w[0]), t.b[0]), tf.mul(tf.matMul(t.prompt!.shared(), tf.matMul(t.prompt!.backMap(0), t.w[0])), 0.5)).dataSync();
  for (let i = 0; i < direct.length; i++) assert.ok(Math.abs(direct[i] - via[i]) < 1e-3 * (1 + Math.abs(direct[i])));
  t.dispose();
  off.dispose();
});

test('the loss trains every teacher weight and the prompt', () => {
  const t = new Teacher(data, graph, shape, { seed: 2 });
  const trip = { users: Int32Array.from([0, 1, 2]), pos: Int32Array.from([data.trainByUser.indices[0], data.trainByUser.indices[data.trainByUser.indptr[1]], data.trainByUser.indices[data.trainByUser.indptr[2]]]), neg: Int32Array.from([5, 6, 7]) };
  const { grads } = tf.variableGrads(() => t.loss(trip, 1e-4, 0.5).total, t.variables);
  for (const v of t.variables) {
    const g = grads[v.name];
    assert.ok(g, `gradient for ${v.name}`);
    assert.ok(tf.sum(tf.abs(g)).dataSync()[0] > 0, `non-zero gradient for ${v.name}`);
  }
  t.dispose();
});

test('η is a PCA: components orthonormal, scores standardised', () => {
  const m = data.modalities[0];
  const r = 4;
  const b = fitPca(m, data.nItems, r);
  for (let c1 = 0; c1 < r; c1++) {
    for (let c2 = 0; c2 < r; c2++) {
      let dot = 0;
      for (let a = 0; a < m.dim; a++) dot += b.components[a * r + c1] * b.components[a * r + c2];
      assert.ok(Math.abs(dot - (c1 === c2 ? 1 : 0)) < 1e-4, `components ${c1}·${c2} = ${dot}`);
    }
  }
  const s = pcaScores(m, data.nItems, b, r);
  for (let c = 0; c < r; c++) {
    let mean = 0;
    let sq = 0;
    for (let i = 0; i < data.nItems; i++) mean += s[i * r + c] / data.nItems;
    for (let i = 0; i < data.nItems; i++) sq += (s[i * r + c] - mean) ** 2 / (data.nItems - 1);
    assert.ok(Math.abs(mean) < 1e-4 && Math.abs(sq - 1) < 1e-2, `score ${c}: mean ${mean} var ${sq}`);
  }
});

test('a dataset without features cannot build a teacher', () => {
  const bare = { ...data, modalities: [] };
  assert.throws(() => new Teacher(bare, graph, shape, { seed: 1 }), /at least one modality/);
});

test("a teacher rebuilt from its arrays reuses the saved PCA bases (no refit) and gives the same outputs", () => {
  const t = new Teacher(data, graph, { ...shape, dropout: 0 }, { seed: 3 });
  const arrays = new Map(t.arrays().map((a) => [a.name, a]));
  for (const m of data.modalities) for (const part of ['mean', 'components', 'scale']) assert.ok(arrays.has(`pca/${m.name}/${part}`), `pca/${m.name}/${part}`);
  const again = new Teacher(data, graph, { ...shape, dropout: 0 }, arrays);
  const a = t.forward(false).final.dataSync();
  const b = again.forward(false).final.dataSync();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `${i}: ${a[i]} vs ${b[i]}`);
  // a changed saved basis changes the rebuilt prompt: the saved one is what is used
  const m0 = data.modalities[0].name;
  const scaled = new Map(arrays);
  scaled.set(`pca/${m0}/scale`, { ...arrays.get(`pca/${m0}/scale`)!, data: arrays.get(`pca/${m0}/scale`)!.data.map((v) => v * 3) });
  const other = new Teacher(data, graph, { ...shape, dropout: 0 }, scaled);
  const c = other.forward(false).final.dataSync();
  assert.ok(c.some((v, i) => Math.abs(v - a[i]) > 1e-4));
  // a checkpoint without the bases (written before they were saved) still loads: they are fitted
  const old = new Map([...arrays].filter(([k]) => !k.startsWith('pca/')));
  const refit = new Teacher(data, graph, { ...shape, dropout: 0 }, old).forward(false).final.dataSync();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - refit[i]) < 1e-6);
  for (const x of [t, again, other]) x.dispose();
});
