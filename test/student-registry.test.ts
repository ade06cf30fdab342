/** The student registry: `--model` names a registered student; training and reading back a checkpoint go through it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STUDENT_MODELS, isSequentialModel } from '../core/defaults.js';
import { studentKind } from '../trainer/models/registry.js';
import { runCli } from '../test-support/cli.js';

const root = mkdtempSync(join(tmpdir(), 'registry-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

test('every name in STUDENT_MODELS is registered; an unknown one is refused naming the known ones', () => {
  for (const name of STUDENT_MODELS) if (!isSequentialModel(name)) assert.equal(typeof studentKind(name).create, 'function');
  assert.throws(() => studentKind('nope'), /unknown student model "nope" \(known: lightgcn\)/);
  assert.throws(() => studentKind('sasrec'), /"sasrec" is a sequential student/);
});

test('train --model is checked before any work, and recorded in the checkpoint and the manifest', () => {
  const data = join(root, 'data');
  const repo = join(root, 'models');
  assert.equal(runCli('generate', '--out', data, '--users', '60', '--items', '40', '--seed', '3').code, 0);
  const bad = runCli('train', '--data', data, '--name', 'x', '--repo', repo, '--model', 'nope', '--student-only');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--model <name>' argument 'nope' is invalid. Allowed choices are lightgcn, sasrec/);
  const ok = runCli('train', '--data', data, '--name', 'x', '--repo', repo, '--model', 'lightgcn', '--student-only', '--epochs', '1', '--dim', '8');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(readFileSync(join(repo, 'x', 'checkpoints', 'student', 'model.json'), 'utf8')).meta.model, 'lightgcn');
  const ex = runCli('export', '--name', 'x', '--repo', repo, '--hnsw-m', '8');
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(JSON.parse(readFileSync(join(JSON.parse(ex.stdout).dir, 'manifest.json'), 'utf8')).training.model, 'lightgcn');
});
