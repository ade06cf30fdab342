/**
 * Issue 24: the teacher guard's plain student trains on a worker thread beside the teacher
 * (trainer/stages/plain-thread.ts): the same figures as one after the other, its log records
 * through the caller's logger, a failure in the worker as an error naming it (never a hang).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { runCli } from '../test-support/cli.js';
import { generateSynthetic } from '../data/synthetic.js';
import { loadDataset } from '../data/dataset.js';
import { startPlainStudent } from '../trainer/stages/plain-thread.js';
import { STUDENT_DEFAULTS, type StudentConfig } from '../trainer/stages/student.js';

const root = mkdtempSync(join(tmpdir(), 'plain-thread-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const data = join(root, 'data');
const repo = join(root, 'models');
generateSynthetic({ dir: data, users: 200, items: 120, seed: 7 });
const TRAIN = ['--epochs', '4', '--eval-every', '2', '--batch', '512', '--lr', '0.005', '--dim', '8', '--no-item-encoder'];
const meta = (name: string, stage: string) => JSON.parse(readFileSync(join(repo, name, 'checkpoints', stage, 'model.json'), 'utf8')).meta;
const CFG: StudentConfig = { ...STUDENT_DEFAULTS, epochs: 4, evalEvery: 2, batch: 512, lr: 0.005, dim: 8 };
const WASM = { backend: 'wasm', choice: 'wasm' as const, skipped: [] };

/** A logger that keeps its records. */
function capture(): { log: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { log, records };
}

test('the plain student on a worker thread beside the teacher gives the figures of the sequential run, to the last digit', () => {
  const a = runCli('train', '--data', data, '--name', 'thread', '--repo', repo, ...TRAIN);
  assert.equal(a.code, 0, a.stderr);
  const b = runCli('train', '--data', data, '--name', 'sequential', '--repo', repo, ...TRAIN, '--no-guard-thread');
  assert.equal(b.code, 0, b.stderr);
  const [oa, ob] = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
  assert.equal(oa.guard.cached, false);
  assert.deepEqual(oa.plain.val, ob.plain.val);
  assert.deepEqual(oa.plain.test, ob.plain.test);
  assert.deepEqual(oa.guard, { ...ob.guard, plainCheckpoint: oa.guard.plainCheckpoint });
  assert.deepEqual(meta('thread', 'plain').curve.map((r: { loss: number }) => r.loss), meta('sequential', 'plain').curve.map((r: { loss: number }) => r.loss));
  assert.deepEqual(oa.student.test, ob.student.test);
  // the cached plain student is reused by a later run of the same budget (no worker then)
  const c = runCli('train', '--data', data, '--name', 'thread', '--repo', repo, ...TRAIN, '--stage', 'student');
  assert.equal(c.code, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).guard.cached, true);
});

test("the worker's log records go through the caller's logger, marked thread: plain", async () => {
  const { log, records } = capture();
  const t = startPlainStudent(loadDataset(data), CFG, join(root, 'direct', 'plain'), WASM, log);
  const r = await t.result;
  assert.equal(r.bestEpoch > 0, true);
  const epochs = records.filter((x) => x.thread === 'plain' && x.msg === 'student epoch');
  assert.deepEqual(epochs.map((x) => x.epoch), [2, 4]);
  assert.ok(records.some((x) => x.thread === 'plain' && x.msg === 'training finished'));
});

test('a failure in the worker rejects with an error naming the plain student, and is logged when it happens', async () => {
  const { log, records } = capture();
  const t = startPlainStudent(loadDataset(data), { ...CFG, validMetric: 'recall@7' }, join(root, 'failing', 'plain'), WASM, log);
  await assert.rejects(t.result, /training the plain student on a worker thread failed: .*recall@7/);
  assert.ok(records.some((x) => x.level === 50 && /plain student \(worker thread\) failed/.test(String(x.msg))));
});
