/** The student guard (trainer/stages/guard.ts): after KD, the distilled student stays the run's student only if it beats the plain one on validation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadCheckpoint, saveCheckpoint } from '../trainer/checkpoint.js';
import { studentGuard } from '../trainer/stages/guard.js';

const lines: string[] = [];
const log = { info: (_f: object, m: string) => lines.push(m), warn: (_f: object, m: string) => lines.push(m) } as unknown as Logger;

function checkpoints(kd: number, plain: number) {
  const root = mkdtempSync(join(tmpdir(), 'promptmm-sg-'));
  const dirs = { student: join(root, 'student'), plain: join(root, 'plain'), aside: join(root, 'kd-student') };
  const w = [{ name: 'w', shape: [2], data: Float32Array.of(1, 2) }];
  saveCheckpoint(dirs.student, { objective: 'kd', epoch: 30, metrics: { val: { 'recall@20': kd } } }, w);
  saveCheckpoint(dirs.plain, { objective: 'bpr', epoch: 40, metrics: { val: { 'recall@20': plain } } }, w);
  return dirs;
}
const objective = (dir: string) => loadCheckpoint<{ objective: string }>(dir).meta.objective;

test('a distilled student above the plain one on validation stays the student', () => {
  const d = checkpoints(0.25, 0.2);
  const r = studentGuard(d.student, d.plain, d.aside, 'recall@20', log);
  assert.deepEqual(r, { metric: 'recall@20', kd: 0.25, plain: 0.2, kept: 'kd' });
  assert.equal(objective(d.student), 'kd');
  assert.equal(existsSync(d.aside), false);
});

test('a distilled student not above the plain one is set aside and the plain student becomes the student', () => {
  for (const [kd, plain] of [[0.2, 0.25], [0.2, 0.2]]) {
    const d = checkpoints(kd, plain);
    const r = studentGuard(d.student, d.plain, d.aside, 'recall@20', log);
    assert.equal(r.kept, 'plain');
    assert.equal(r.aside, d.aside);
    assert.equal(objective(d.student), 'bpr'); // what eval, dump and export read
    assert.equal(objective(d.aside), 'kd');
    assert.equal(objective(d.plain), 'bpr'); // the plain checkpoint itself stays (the teacher guard's cache)
    assert.match(lines.at(-1)!, /student guard: the distilled student's validation recall@20 is NOT above the plain student's/);
  }
});

test('a checkpoint without the metric is a clear error, nothing moved', () => {
  const d = checkpoints(0.2, 0.25);
  assert.throws(() => studentGuard(d.student, d.plain, d.aside, 'ndcg@20', log), /student guard: no validation ndcg@20 in .*student/);
  assert.equal(objective(d.student), 'kd');
});
