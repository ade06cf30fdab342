import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from '../trainer/checkpoint.js';

const root = mkdtempSync(join(tmpdir(), 'ckpt-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

const arrays = [
  { name: 'a', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
  { name: 'b', shape: [4], data: Float32Array.from([-1, 0.5, 7, 8]) },
];

test('round trip in the tfjs weights layout', () => {
  const dir = join(root, 'rt', 'student');
  saveCheckpoint(dir, { epoch: 3 }, arrays, { 'curve.json': '[]' });
  const ck = loadCheckpoint<{ epoch: number }>(dir);
  assert.equal(ck.meta.epoch, 3);
  assert.deepEqual([...ck.arrays.get('a')!.data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(ck.arrays.get('b')!.shape, [4]);
  assert.deepEqual(readdirSync(dir).sort(), ['curve.json', 'model.json', 'weights.bin']);
  // overwrite leaves exactly one folder, no temporaries
  saveCheckpoint(dir, { epoch: 4 }, arrays);
  assert.equal(loadCheckpoint<{ epoch: number }>(dir).meta.epoch, 4);
  assert.deepEqual(readdirSync(join(root, 'rt')), ['student']);
});

test('a truncated weights file is refused with the file named', () => {
  const dir = join(root, 'trunc', 'student');
  saveCheckpoint(dir, {}, arrays);
  truncateSync(join(dir, 'weights.bin'), 10);
  assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof CheckpointError && /weights\.bin: 10 bytes, manifest expects 40/.test(e.message));
  assert.throws(() => loadCheckpoint(join(root, 'nothing')), /model\.json missing/);
});

test('a writer killed mid-swap leaves the previous checkpoint recoverable', () => {
  const parent = join(root, 'crash');
  const dir = join(parent, 'student');
  saveCheckpoint(dir, { epoch: 1 }, arrays);
  // Simulate a dead writer (pid 2^22+1 is not running) that had moved the old folder aside
  // and left an incomplete new one.
  const dead = 4194305;
  renameSync(dir, `${dir}.old-${dead}`);
  mkdirSync(`${dir}.tmp-${dead}`);
  assert.equal(loadCheckpoint<{ epoch: number }>(dir).meta.epoch, 1);
  assert.ok(!existsSync(`${dir}.tmp-${dead}`));
  assert.deepEqual(readdirSync(parent), ['student']);
});
