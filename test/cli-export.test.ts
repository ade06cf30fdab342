/** `promptmm export` and `promptmm models` through real processes, with the bad inputs of the exporter issue. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../test-support/cli.js';
import { readNpy } from '../core/npy.js';

const root = mkdtempSync(join(tmpdir(), 'cli-export-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const repo = join(root, 'models');
const data = join(root, 'data');

const cli = runCli;

test('train → export → models list/show/verify; bad checkpoints and paths refused', () => {
  assert.equal(cli('generate', '--out', data, '--users', '200', '--items', '150', '--seed', '4').code, 0);
  let r = cli('train', '--data', data, '--name', 'm', '--repo', repo, '--student-only', '--epochs', '3', '--eval-every', '3', '--dim', '16', '--batch', '512');
  assert.equal(r.code, 0, r.stderr);
  const trained = JSON.parse(r.stdout).student;

  r = cli('export', '--name', 'm', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.version, 1);
  const items = readNpy(join(out.dir, 'item_embeddings.npy'));
  assert.deepEqual(items.shape, [150, 16]);
  const manifest = JSON.parse(readFileSync(join(out.dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.hnsw.m, 8);
  assert.equal(manifest.training.dim, 16);
  assert.ok(Math.abs(manifest.metrics.test['recall@20'] - trained.test['recall@20']) < 1e-9);

  r = cli('models', 'list', '--repo', repo, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout)[0].versions.map((v: { version: number }) => v.version), [1]);
  r = cli('models', 'show', '--repo', repo, '--name', 'm');
  assert.equal(JSON.parse(r.stdout).version, 1);
  r = cli('models', 'verify', '--repo', repo, '--name', 'm');
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /m v1: ok/);

  // a corrupt bundle file fails verify with the file named
  const hnsw = join(out.dir, 'items.hnsw');
  const b = readFileSync(hnsw);
  b[100] ^= 1;
  writeFileSync(hnsw, b);
  r = cli('models', 'verify', '--repo', repo, '--name', 'm');
  assert.equal(r.code, 1);
  assert.match(r.stdout, /items\.hnsw: sha256/);

  // a truncated checkpoint: one clear line, no new version
  const weights = join(repo, 'm', 'checkpoints', 'student', 'weights.bin');
  writeFileSync(weights, readFileSync(weights).subarray(0, 1000));
  r = cli('export', '--name', 'm', '--repo', repo);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^promptmm: error: .*weights\.bin/m);
  assert.ok(!r.stderr.includes('    at '), 'no stack trace');
  assert.deepEqual(readdirSync(join(repo, 'm')).sort(), ['1', 'checkpoints']);

  r = cli('export', '--name', 'nothing', '--repo', repo);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no student checkpoint at .*nothing/);

  const file = join(root, 'file');
  writeFileSync(file, '');
  r = cli('export', '--name', 'm', '--repo', file);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is a file, not a folder|not a directory/);

  r = cli('models', 'show', '--repo', repo, '--name', 'm', '--version', '7');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no version 7 \(versions: 1\)/);
});
