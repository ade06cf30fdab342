/** `train --model sasrec` end to end through the CLI: the contract's checkpoint, resume, eval, dump, bad input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../test-support/cli.js';
import { writeSequentialDataset } from '../test-support/sequential-data.js';
import { initEngine } from '../trainer/engine/backend.js';
import { loadDataset } from '../data/dataset.js';
import { evaluate } from '../trainer/eval.js';
import { readNpy } from '../core/npy.js';
import { sequenceWeightShapes } from '../repository/sasrec-weights.js';

await initEngine('wasm');
const root = mkdtempSync(join(tmpdir(), 'sasrec-cli-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const data = join(root, 'walk');
writeSequentialDataset(data, { users: 80, items: 20, minLen: 4, maxLen: 14, seed: 11 });
const repo = join(root, 'models');
const small = ['--dim', '16', '--max-len', '8', '--seq-blocks', '1', '--batch', '32', '--eval-every', '1', '--no-progress'];
const ckDir = join(repo, 'w', 'checkpoints', 'student');

test('train --model sasrec writes the contract checkpoint; --resume continues it; eval and dump reproduce its test figures', () => {
  const r = runCli('train', '--data', data, '--name', 'w', '--repo', repo, '--model', 'sasrec', '--epochs', '3', ...small);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /the multimodal stages \(teacher, distillation\) do not apply to --model sasrec yet/);
  const file = JSON.parse(readFileSync(join(ckDir, 'model.json'), 'utf8'));
  const meta = file.meta;
  assert.equal(meta.model, 'sasrec');
  assert.equal(meta.kind, 'student');
  assert.deepEqual(meta.shape, { dim: 16, blocks: 1, heads: 1, maxLen: 8, ffDim: 16, nItems: 20 });
  assert.equal(meta.lnEps, 1e-5);
  assert.equal(meta.dataset.nItems, 20);
  assert.equal(meta.validMetric, 'ndcg@10'); // sasrec's own default, as --ks (10,20,50)
  assert.ok('ndcg@50' in meta.metrics.test);
  const names = new Map<string, number[]>(file.weightsManifest[0].weights.map((w: { name: string; shape: number[] }) => [w.name, w.shape]));
  for (const [name, shape] of sequenceWeightShapes(meta.shape)) assert.deepEqual(names.get(name), shape, name);

  const resumed = runCli('train', '--data', data, '--name', 'w', '--repo', repo, '--model', 'sasrec', '--epochs', '5', '--resume', ...small);
  assert.equal(resumed.code, 0, resumed.stderr);
  const rep = JSON.parse(resumed.stdout);
  assert.ok(rep.student.epochsRun >= 2 && rep.student.epochsRun <= 5 - meta.epoch, JSON.stringify(rep.student));
  const after = JSON.parse(readFileSync(join(ckDir, 'model.json'), 'utf8')).meta;
  assert.equal(after.finished.lastEpoch, 5);
  assert.ok(after.curve.some((c: { epoch: number }) => c.epoch === 4));

  const ev = runCli('eval', '--name', 'w', '--repo', repo, '--split', 'test', '--json');
  assert.equal(ev.code, 0, ev.stderr);
  const m = JSON.parse(ev.stdout);
  for (const k of ['recall@10', 'ndcg@10', 'recall@20', 'ndcg@50']) assert.ok(Math.abs(m[k] - after.metrics.test[k]) < 1e-9, `${k}: eval ${m[k]} vs training ${after.metrics.test[k]}`);

  const out = join(root, 'dump');
  const dump = runCli('dump', '--name', 'w', '--repo', repo, '--split', 'test', '--out', out);
  assert.equal(dump.code, 0, dump.stderr);
  const U = readNpy(join(out, 'user_embeddings.npy'));
  const I = readNpy(join(out, 'item_embeddings.npy'));
  assert.deepEqual(U.shape, [80, 16]);
  assert.deepEqual(I.shape, [20, 16]);
  // the dumped vectors scored as any user table (train + validation masked) give eval's figures
  const again = evaluate(U.data, I.data, 16, loadDataset(data), { split: 'test', ks: [10, 20, 50] });
  for (const k of ['recall@10', 'ndcg@10', 'ndcg@50']) assert.ok(Math.abs(again[k] - m[k]) < 1e-9, k);
  const dv = runCli('dump', '--name', 'w', '--repo', repo, '--split', 'val', '--out', join(root, 'dump-val'));
  assert.equal(dv.code, 0, dv.stderr);
  const ve = JSON.parse(runCli('eval', '--name', 'w', '--repo', repo, '--split', 'val', '--json').stdout);
  const vU = readNpy(join(root, 'dump-val', 'user_embeddings.npy'));
  const vAgain = evaluate(vU.data, I.data, 16, loadDataset(data), { split: 'val', ks: [10, 20, 50] });
  assert.ok(Math.abs(vAgain['ndcg@10'] - ve['ndcg@10']) < 1e-9);
});

test('bad input: --max-len 0, one interaction per user, --stage teacher, heads not dividing dim', () => {
  const zero = runCli('train', '--data', data, '--name', 'z', '--repo', repo, '--model', 'sasrec', '--max-len', '0');
  assert.equal(zero.code, 1);
  assert.match(zero.stderr, /--max-len must be an integer ≥ 1, got "0"/);

  const single = join(root, 'single');
  mkdirSync(single);
  const lines = ['userID\titemID\tx_label'];
  for (let u = 0; u < 9; u++) lines.push(`${u}\t${u % 4}\t${u % 3}`);
  writeFileSync(join(single, 'one.inter'), lines.join('\n') + '\n');
  const one = runCli('train', '--data', single, '--name', 'o', '--repo', repo, '--model', 'sasrec', '--epochs', '1');
  assert.equal(one.code, 1);
  assert.match(one.stderr, /no user has two or more train interactions/);
  assert.doesNotMatch(one.stderr, /\n\s+at /); // a message, not a stack trace

  const teacher = runCli('train', '--data', data, '--name', 't', '--repo', repo, '--model', 'sasrec', '--stage', 'teacher');
  assert.equal(teacher.code, 1);
  assert.match(teacher.stderr, /--stage teacher: --model sasrec has no teacher yet/);

  const heads = runCli('train', '--data', data, '--name', 'h', '--repo', repo, '--model', 'sasrec', '--dim', '16', '--seq-heads', '3', '--epochs', '1');
  assert.equal(heads.code, 1);
  assert.match(heads.stderr, /--seq-heads 3 must divide --dim 16/);
});
