/** The validation metric that early stopping and the best checkpoint follow: any recall@K / ndcg@K of --ks, checked against them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../trainer/engine/backend.js';
import { generateSynthetic } from '../data/synthetic.js';
import { loadDataset } from '../data/dataset.js';
import { createLogger } from '../core/log.js';
import { STUDENT_DEFAULTS, trainStudent, type StudentConfig } from '../trainer/stages/student.js';
import { runCli } from '../test-support/cli.js';

const backend = await initEngine('wasm');
const root = mkdtempSync(join(tmpdir(), 'valid-metric-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const dataDir = join(root, 'data');
generateSynthetic({ dir: dataDir, users: 200, items: 120, seed: 7 });
const data = loadDataset(dataDir, { features: false });
const log = createLogger('silent');
const cfg: StudentConfig = { ...STUDENT_DEFAULTS, dim: 8, batch: 256, lr: 0.01, epochs: 8, evalEvery: 2, patience: 10, ks: [10], validMetric: 'recall@10' };

test('with --ks 10 the loop keeps the epoch of the best validation recall@10 (progress bar on)', async () => {
  const dir = join(root, 'ck-recall10');
  const r = await trainStudent(data, cfg, { checkpointDir: dir, backend, log, progress: true });
  const curve: { epoch: number; val?: Record<string, number> }[] = JSON.parse(readFileSync(join(dir, 'curve.json'), 'utf8'));
  const evaluated = curve.filter((e) => e.val);
  assert.deepEqual(evaluated.map((e) => e.epoch), [2, 4, 6, 8]);
  const best = evaluated.reduce((a, e) => (e.val!['recall@10'] > a.val!['recall@10'] ? e : a));
  assert.ok(best.epoch > evaluated[0].epoch, 'recall@10 rose after the first evaluation (else this test shows nothing)');
  assert.equal(r.bestEpoch, best.epoch);
  assert.equal(r.val['recall@10'], best.val!['recall@10']);
  const meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).meta;
  assert.equal(meta.validMetric, 'recall@10');
  assert.equal(meta.epoch, best.epoch);
});

test('ndcg@K works the same way', async () => {
  const dir = join(root, 'ck-ndcg10');
  const r = await trainStudent(data, { ...cfg, validMetric: 'ndcg@10' }, { checkpointDir: dir, backend, log });
  const evaluated = (JSON.parse(readFileSync(join(dir, 'curve.json'), 'utf8')) as { epoch: number; val?: Record<string, number> }[]).filter((e) => e.val);
  const best = evaluated.reduce((a, e) => (e.val!['ndcg@10'] > a.val!['ndcg@10'] ? e : a));
  assert.equal(r.bestEpoch, best.epoch);
});

test('a validation metric whose K is not among the cut-offs is a clear error naming both flags', async () => {
  await assert.rejects(trainStudent(data, { ...cfg, validMetric: 'recall@20' }, { checkpointDir: join(root, 'ck-bad'), backend, log }), /--valid-metric recall@20 needs K = 20 among --ks \(got --ks 10\)/);
  const r = runCli('train', '--data', dataDir, '--name', 'bad', '--repo', join(root, 'models'), '--ks', '10,50');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^promptmm: error: --valid-metric recall@20 needs K = 20 among --ks \(got --ks 10,50\)/m);
  const r2 = runCli('train', '--data', dataDir, '--name', 'bad', '--repo', join(root, 'models'), '--valid-metric', 'mrr@10');
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /--valid-metric must be recall@K or ndcg@K/);
});
