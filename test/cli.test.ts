/**
 * The command contract end to end, through real processes: generate → train → eval →
 * dump → resume, and every bad input ending in one clear line, exit code ≠ 0 and no
 * checkpoint left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../test-support/cli.js';
import { readNpy, encodeNpy } from '../core/npy.js';

const root = mkdtempSync(join(tmpdir(), 'cli-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const repo = join(root, 'models');
const data = join(root, 'data');

const cli = runCli;

const TRAIN = ['--epochs', '6', '--eval-every', '2', '--batch', '512', '--lr', '0.005', '--dim', '16'];

test('generate → train → eval → dump → resume', () => {
  let r = cli('generate', '--out', data, '--users', '300', '--items', '200', '--seed', '3');
  assert.equal(r.code, 0, r.stderr);

  r = cli('train', '--data', data, '--name', 'm', '--repo', repo, ...TRAIN, '--student-only');
  assert.equal(r.code, 0, r.stderr);
  const trained = JSON.parse(r.stdout).student;
  assert.equal(JSON.parse(r.stdout).mode, 'plain');
  const ck = join(repo, 'm', 'checkpoints', 'student');
  for (const f of ['model.json', 'weights.bin', 'curve.json', 'curve.svg']) assert.ok(existsSync(join(ck, f)), f);
  assert.match(readFileSync(join(ck, 'curve.svg'), 'utf8'), /^<svg/);
  const curve = JSON.parse(readFileSync(join(ck, 'curve.json'), 'utf8'));
  assert.deepEqual(curve.map((e: { epoch: number }) => e.epoch), [1, 2, 3, 4, 5, 6]);
  assert.ok(curve[5].loss < curve[0].loss, 'loss decreases');

  // re-evaluation from the checkpoint reproduces the metrics recorded at training time
  r = cli('eval', '--name', 'm', '--repo', repo, '--split', 'test', '--json');
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  for (const k of ['recall@20', 'ndcg@20', 'recall@50', 'ndcg@50']) {
    assert.equal(typeof m[k], 'number', k);
    assert.ok(Math.abs(m[k] - trained.test[k]) < 1e-6, `${k}: ${m[k]} vs ${trained.test[k]}`);
  }
  r = cli('eval', '--name', 'm', '--repo', repo, '--split', 'val', '--json', '--ks', '10');
  assert.deepEqual(Object.keys(JSON.parse(r.stdout)).sort(), ['ndcg@10', 'recall@10', 'users']);

  // dump: float32, one row per id
  r = cli('dump', '--name', 'm', '--repo', repo, '--out', join(root, 'dump'));
  assert.equal(r.code, 0, r.stderr);
  const u = readNpy(join(root, 'dump', 'user_embeddings.npy'));
  const i = readNpy(join(root, 'dump', 'item_embeddings.npy'));
  assert.deepEqual(u.shape, [300, 16]);
  assert.deepEqual(i.shape, [200, 16]);
  assert.equal(readFileSync(join(root, 'dump', 'user_embeddings.npy')).toString('latin1', 0, 60).includes("'<f4'"), true);

  // resume continues after the best epoch
  r = cli('train', '--data', data, '--name', 'm', '--repo', repo, ...TRAIN, '--student-only', '--epochs', '8', '--resume');
  assert.equal(r.code, 0, r.stderr);
  const curve2 = JSON.parse(readFileSync(join(ck, 'curve.json'), 'utf8'));
  const epochs: number[] = curve2.map((e: { epoch: number }) => e.epoch);
  assert.equal(epochs[epochs.length - 1], 8);
  assert.deepEqual(epochs, [...new Set(epochs)].sort((a, b) => a - b));
});

test('two stages: teacher, then the distilled student; each resumable', () => {
  const r = cli('train', '--data', data, '--name', 'kd', '--repo', repo, ...TRAIN, '--epochs', '4', '--force-kd');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.mode, 'kd');
  for (const stage of ['teacher', 'student']) {
    const dir = join(repo, 'kd', 'checkpoints', stage);
    for (const f of ['model.json', 'weights.bin', 'curve.json', 'curve.svg']) assert.ok(existsSync(join(dir, f)), `${stage}/${f}`);
    assert.equal(typeof out[stage].test['recall@20'], 'number');
  }
  const meta = JSON.parse(readFileSync(join(repo, 'kd', 'checkpoints', 'student', 'model.json'), 'utf8')).meta;
  assert.equal(meta.objective, 'kd');
  assert.ok(meta.curve.every((e: { terms: Record<string, number> }) => ['bpr', 'pair', 'list', 'emb'].every((k) => typeof e.terms[k] === 'number')));
  // parameters: teacher (ID tables + feature reductions + prompt) against the student's ID table
  assert.equal(out.parameters.student, (300 + 200) * 16);
  assert.ok(out.parameters.teacher > out.parameters.student && out.parameters.ratio > 1);
  // resuming finished stages skips them
  const again = cli('train', '--data', data, '--name', 'kd', '--repo', repo, ...TRAIN, '--epochs', '4', '--resume');
  assert.equal(again.code, 0, again.stderr);
  const o2 = JSON.parse(again.stdout);
  assert.equal(o2.teacher.skipped, true);
  assert.equal(o2.student.skipped, true);
  // stage 2 alone with ablations, on the saved teacher
  const abl = cli('train', '--data', data, '--name', 'kd', '--repo', repo, ...TRAIN, '--epochs', '2', '--stage', 'student', '--no-pairkd', '--no-disentangle', '--no-embkd', '--force-kd');
  assert.equal(abl.code, 0, abl.stderr);
  const terms = JSON.parse(readFileSync(join(repo, 'kd', 'checkpoints', 'student', 'curve.json'), 'utf8'))[0].terms;
  assert.deepEqual(Object.keys(terms).sort(), ['bpr', 'list']);
  // stage 2 without a teacher is refused
  const none = cli('train', '--data', data, '--name', 'nokd', '--repo', repo, ...TRAIN, '--stage', 'student');
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /needs a trained teacher/);
});

test('a dataset without feature files trains the plain student with a warning', () => {
  const bare = join(root, 'bare');
  mkdirSync(bare, { recursive: true });
  writeFileSync(join(bare, 'bare.inter'), readFileSync(join(data, 'synthetic.inter')));
  const r = cli('train', '--data', bare, '--name', 'bare', '--repo', repo, ...TRAIN, '--epochs', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).mode, 'plain');
  assert.match(r.stderr, /teacher needs at least one modality/);
  assert.ok(!existsSync(join(repo, 'bare', 'checkpoints', 'teacher')));
});

test('every command has --help', () => {
  for (const c of ['train', 'eval', 'dump', 'generate', 'demo']) {
    const r = cli(c, '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`Usage: promptmm ${c}`));
  }
});

// Bad inputs: each a one-line error naming what is wrong, exit ≠ 0, nothing written.
const GOOD = ['userID\titemID\tx_label', '0\t0\t0', '0\t1\t1', '0\t2\t2', '1\t1\t0', '1\t2\t2', '1\t0\t1', ''].join('\n');
const feat = (rows: number, fill = 0.5) => encodeNpy(new Float32Array(rows * 4).fill(fill), [rows, 4]);
const bad: [string, Record<string, string | Buffer> | null, RegExp][] = [
  ['missing folder', null, /does not exist|not found|no such/i],
  ['no .inter', { 'image_feat.npy': feat(3) }, /\.inter/],
  ['wrong header', { 'x.inter': GOOD.replace('x_label', 'split') }, /x\.inter.*x_label/],
  // (non-integer ids are string ids since issue 18; a control character is not)
  ['control character in an id', { 'x.inter': GOOD.replace('1\t1\t0', 'u\u00011\t1\t0') }, /x\.inter line 5.*userID/],
  ['x_label outside 0/1/2', { 'x.inter': GOOD.replace('1\t1\t0', '1\t1\t3') }, /x\.inter line 5.*x_label/],
  ['empty split', { 'x.inter': GOOD.replace(/\t1\n/g, '\t0\n') }, /validation/],
  ['too few feature rows', { 'x.inter': GOOD, 'image_feat.npy': feat(2) }, /image_feat\.npy.*2.*3/],
  ['NaN features', { 'x.inter': GOOD, 'image_feat.npy': feat(3, NaN) }, /image_feat\.npy row 0/],
  ['unknown dtype', { 'x.inter': GOOD, 'image_feat.npy': Buffer.from(feat(3).toString('latin1').replace("'<f4'", "'<i4'"), 'latin1') }, /image_feat\.npy.*<i4/],
];
for (const [what, files, msg] of bad) {
  test(`bad input: ${what}`, () => {
    const dir = join(root, `bad-${what.replace(/\W+/g, '-')}`);
    if (files) {
      mkdirSync(dir, { recursive: true });
      for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
    }
    const r = cli('train', '--data', dir, '--name', 'bad', '--repo', repo, ...TRAIN);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^promptmm: error: /);
    assert.match(lines[0], msg);
    assert.ok(!existsSync(join(repo, 'bad')), 'no checkpoint left behind');
  });
}

test('bad flags are refused before any work', () => {
  const r = cli('train', '--data', data, '--name', 'flags', '--repo', repo, '--dim', 'abc');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--dim must be an integer/);
  assert.ok(!existsSync(join(repo, 'flags')));
  const r2 = cli('eval', '--name', 'nope', '--repo', repo, '--json');
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /^promptmm: error: no checkpoint at .*nope/m);
});
