/**
 * The loop's budget and bookkeeping: the plateau rule (relative to the paired per-user noise),
 * the summary saying whether a run converged or hit the epoch cap, test evaluated once from the
 * best state, periodic checkpoints (--checkpoint-every) and resuming from one written mid-run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { initEngine } from '../trainer/engine/backend.js';
import { generateSynthetic } from '../data/synthetic.js';
import { loadDataset } from '../data/dataset.js';
import { STUDENT_DEFAULTS, trainStudent, type StudentConfig } from '../trainer/stages/student.js';
import { Plateau, pairedDifference } from '../trainer/plateau.js';

const backend = await initEngine('wasm');
const root = mkdtempSync(join(tmpdir(), 'loop-budget-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const dataDir = join(root, 'data');
generateSynthetic({ dir: dataDir, users: 200, items: 120, seed: 7 });
const data = loadDataset(dataDir, { features: false });
const cfg: StudentConfig = { ...STUDENT_DEFAULTS, dim: 8, batch: 256, lr: 0.01, epochs: 6, evalEvery: 2, patience: 100, checkpointEvery: 0, ks: [10], validMetric: 'recall@10' };

/** A logger that keeps its lines. */
function recorder() {
  const lines: { msg: string; epoch?: number }[] = [];
  const stream = new Writable({ write: (chunk, _enc, done) => (lines.push(...String(chunk).trim().split('\n').map((l) => JSON.parse(l))), done()) });
  return { log: pino({ level: 'debug' }, stream), lines };
}

test('plateau: progress only beyond z standard errors of the paired differences; patience counts evaluations without it', () => {
  const base = Float64Array.from({ length: 100 }, (_, i) => (i % 10) / 10);
  const p = new Plateau(2, 2);
  assert.equal(p.observe(base, true).progress, true); // the first is the reference
  // a tiny gain on one user: positive but inside its noise
  const tiny = base.slice();
  tiny[0] += 0.1;
  const v1 = p.observe(tiny, true);
  assert.equal(v1.progress, false);
  assert.ok(v1.gain > 0 && v1.gain < 2 * v1.se); // one user of 100 gained: a mean gain of one standard error
  // a broad gain: progress, and the count restarts
  const broad = base.map((v) => v + 0.05);
  assert.equal(p.observe(broad, true).progress, true);
  assert.equal(p.observe(broad, true).stop, false);
  assert.equal(p.observe(broad, true).stop, true); // two evaluations in a row without progress
  const d = pairedDifference(Float64Array.from([1, 2, 3]), Float64Array.from([0, 0, 0]));
  assert.equal(d.mean, 2);
  assert.ok(Math.abs(d.se - Math.sqrt(1 / 3)) < 1e-12);
  // z 0: any gain is progress
  const any = new Plateau(1, 0);
  any.observe(base, true);
  assert.equal(any.observe(tiny, true).progress, true);
  // above the reference but not a new best: no progress
  assert.equal(any.observe(base.map((v) => v + 0.01), false).progress, false);
});

test('plateau drop: two evaluations without progress, the last significantly below the reference, stop the run before the patience; a dip right after a progress does not', () => {
  // per-user values with spread (so that the paired differences have a standard error)
  const base = Float64Array.from({ length: 200 }, (_, i) => (i % 10) / 10);
  const below = (by: number) => base.map((v, i) => v - by * (i % 2)); // half the users lose `by`
  const p = new Plateau(10, 1, 1);
  p.observe(base, true);
  const first = p.observe(below(0.2), false);
  assert.ok(first.gain < -first.se); // significantly below, but the first evaluation without progress
  assert.equal(first.stop, false);
  const second = p.observe(below(0.2), false);
  assert.deepEqual([second.stale, second.stop, second.dropped], [2, true, true]);
  // inside the noise: only the patience ends it
  const q = new Plateau(3, 1, 1);
  q.observe(base, true);
  const flat = base.slice();
  flat[0] -= 0.1; // one user down, one up: no change on the mean
  flat[1] += 0.1;
  assert.equal(q.observe(flat, false).stop, false);
  assert.equal(q.observe(flat, false).stop, false);
  const last = q.observe(flat, false);
  assert.deepEqual([last.stop, last.dropped], [true, false]);
  // drop 0: off
  const off = new Plateau(10, 1, 0);
  off.observe(base, true);
  off.observe(below(0.2), false);
  assert.equal(off.observe(below(0.2), false).stop, false);
});

test('a run that keeps progressing ends on the epoch cap and says so; test is evaluated once, the checkpoint written once', async () => {
  const dir = join(root, 'cap');
  const { log, lines } = recorder();
  const r = await trainStudent(data, { ...cfg, plateauZ: 0 }, { checkpointDir: dir, backend, log });
  const meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).meta;
  assert.equal(r.endedOn, 'epoch cap'); // patience 100 cannot run out in 3 evaluations
  assert.equal(r.stoppedEarly, false);
  assert.ok(lines.some((l) => /reached the epoch cap \(--epochs 6\)/.test(l.msg)));
  assert.equal(meta.finished.endedOn, r.endedOn);
  assert.equal(typeof meta.metrics.test['recall@10'], 'number');
  assert.deepEqual(r.test, meta.metrics.test);
  assert.equal(lines.filter((l) => /test evaluation/.test(l.msg)).length, 1);
  assert.equal(lines.filter((l) => /checkpoint written/.test(l.msg)).length, 1);
  assert.ok(r.time.train > 0 && r.time.eval > 0 && r.time.checkpoint > 0);
});

test('a validation plateau stops the run: ended on the plateau', async () => {
  const r = await trainStudent(data, { ...cfg, patience: 1, plateauZ: 1e9 }, { checkpointDir: join(root, 'plateau'), backend, log: pino({ level: 'silent' }) });
  assert.equal(r.endedOn, 'plateau');
  assert.equal(r.stoppedEarly, true);
  assert.equal(r.epochsRun, 4); // the reference at epoch 2, no progress at 4
});

test('--checkpoint-every writes the best state mid-run; a run resumed from such a checkpoint (no test metrics yet) finishes', async () => {
  const dir = join(root, 'periodic');
  const { log, lines } = recorder();
  await trainStudent(data, { ...cfg, plateauZ: 0, checkpointEvery: 2 }, { checkpointDir: dir, backend, log });
  const writes = lines.filter((l) => /checkpoint written/.test(l.msg));
  assert.ok(writes.length >= 2, `${writes.length} writes`); // at least one mid-run, and the final one
  // what a crash after a mid-run write leaves: no test metrics, not finished
  const file = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  delete file.meta.finished;
  delete file.meta.metrics.test;
  writeFileSync(join(dir, 'model.json'), JSON.stringify(file));
  const r = await trainStudent(data, { ...cfg, epochs: 8 }, { checkpointDir: dir, backend, log: pino({ level: 'silent' }), resume: true });
  assert.equal(typeof r.test['recall@10'], 'number');
  const meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).meta;
  assert.ok(meta.finished && meta.lastEpoch === 8);
});
