/**
 * Issue 21: the CKD teacher option (uni-modal teachers, counterfactual modality weights), its
 * bad inputs (one modality, a dead modality) and the teacher-quality guard, through the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../test-support/cli.js';
import { generateSynthetic } from '../data/synthetic.js';
import { encodeNpy } from '../core/npy.js';
import { counterfactualWeights, CKD_COEFF_MAX, CKD_COEFF_MIN } from '../trainer/models/ckd.js';

const root = mkdtempSync(join(tmpdir(), 'ckd-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const data = join(root, 'data');
const repo = join(root, 'models');
generateSynthetic({ dir: data, users: 200, items: 120, seed: 5 });
const TRAIN = ['--epochs', '4', '--eval-every', '2', '--batch', '512', '--lr', '0.005', '--dim', '8'];
const train = (dir: string, name: string, ...extra: string[]) => runCli('train', '--data', dir, '--name', name, '--repo', repo, ...TRAIN, ...extra);
const meta = (name: string, stage: string) => JSON.parse(readFileSync(join(repo, name, 'checkpoints', stage, 'model.json'), 'utf8')).meta;

test('counterfactual weights: the reference formula for two modalities, sum M, the under-optimized modality up-weighted, clamped', () => {
  // joint x, text branch x_t, visual branch x_v; with two modalities "text removed" is the visual branch
  const joint = [3, 2, 1];
  const xt = [1, 0.5, 2];
  const xv = [2, 1, -1];
  const w = counterfactualWeights(joint, [xt, xv], [xv, xt]);
  for (let b = 0; b < 3; b++) {
    const clamp = (c: number) => Math.min(CKD_COEFF_MAX, Math.max(CKD_COEFF_MIN, c));
    const ct = clamp((joint[b] - xv[b]) / xt[b]);
    const cv = clamp((joint[b] - xt[b]) / xv[b]);
    const ratioT = 1 - (ct - cv) / (ct + cv); // codes/train_kd.py
    assert.ok(Math.abs(w[0][b] - ratioT) < 1e-5, `triplet ${b}: ${w[0][b]} vs ${ratioT}`);
    assert.ok(Math.abs(w[1][b] - (2 - ratioT)) < 1e-5);
  }
  // three modalities: the weights of a triplet sum to 3; the modality whose removal moves the joint score least (relative to its branch) gets the most
  const w3 = counterfactualWeights([4], [[1], [1], [1]], [[1], [2], [3.5]]);
  assert.ok(Math.abs(w3[0][0] + w3[1][0] + w3[2][0] - 3) < 1e-5);
  assert.ok(w3[2][0] > w3[1][0] && w3[1][0] > w3[0][0]);
  // 0/0 and negative coefficients are clamped, not NaN
  const wz = counterfactualWeights([0], [[0], [1]], [[0], [2]]);
  assert.ok(wz.every((m) => Number.isFinite(m[0])));
});

test('--teacher ckd: uni-modal teachers first, then the CKD teacher with its modality weights per epoch, then stage 2; --resume skips them all', () => {
  const r = train(data, 'c', '--teacher', 'ckd', '--force-kd');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.teacherKind, 'ckd');
  assert.deepEqual(Object.keys(out.unimodal).sort(), ['audio', 'image']);
  for (const m of ['audio', 'image']) {
    const u = meta('c', `unimodal-${m}`);
    assert.equal(u.model, 'unimodal-teacher');
    assert.deepEqual(u.modalities.map((x: { name: string }) => x.name), [m]);
  }
  const t = meta('c', 'teacher');
  assert.equal(t.model, 'ckd-teacher');
  assert.deepEqual(t.unimodal.map((x: { modality: string }) => x.modality).sort(), ['audio', 'image']);
  // every epoch logs the CKD term and a weight per modality; the weights average to 1 (they sum to M per triplet)
  for (const e of t.curve) {
    assert.equal(typeof e.terms.ckd, 'number');
    assert.ok(Math.abs(e.terms.w_audio + e.terms.w_image - 2) < 1e-3, JSON.stringify(e.terms));
  }
  assert.match(readFileSync(join(repo, 'c', 'checkpoints', 'teacher', 'modality-weights.svg'), 'utf8'), /^<svg/);
  assert.equal(meta('c', 'student').objective, 'kd');
  assert.equal(out.guard.teacherModel, 'ckd-teacher');
  const again = train(data, 'c', '--teacher', 'ckd', '--force-kd', '--resume');
  assert.equal(again.code, 0, again.stderr);
  const o2 = JSON.parse(again.stdout);
  assert.ok(o2.unimodal.audio.skipped && o2.unimodal.image.skipped && o2.teacher.skipped && o2.student.skipped);
  // resuming onto the other kind of teacher is refused, naming both
  const other = train(data, 'c', '--teacher', 'promptmm', '--resume');
  assert.notEqual(other.code, 0);
  assert.match(other.stderr, /is a ckd-teacher, this run trains a promptmm-teacher/);
});

test('--stage unimodal trains only the uni-modal teachers; --stage teacher without them is refused', () => {
  const none = train(data, 's', '--teacher', 'ckd', '--stage', 'teacher');
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /no uni-modal teacher of audio .*run --stage unimodal first/);
  const r = train(data, 's', '--teacher', 'ckd', '--stage', 'unimodal');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(repo, 's', 'checkpoints', 'unimodal-audio', 'model.json')));
  assert.ok(!existsSync(join(repo, 's', 'checkpoints', 'teacher')));
  const t = train(data, 's', '--teacher', 'ckd', '--stage', 'teacher');
  assert.equal(t.code, 0, t.stderr);
  assert.equal(meta('s', 'teacher').model, 'ckd-teacher');
  assert.ok(!existsSync(join(repo, 's', 'checkpoints', 'student')));
  // --stage unimodal needs --teacher ckd
  const p = train(data, 's2', '--stage', 'unimodal');
  assert.notEqual(p.code, 0);
  assert.match(p.stderr, /--stage unimodal trains the uni-modal teachers of --teacher ckd/);
});

test('--teacher ckd on one modality runs with a note as the PromptMM teacher; a dead (all-zero) modality is reported and left out', () => {
  const one = join(root, 'one');
  mkdirSync(one);
  copyFileSync(join(data, 'synthetic.inter'), join(one, 'synthetic.inter'));
  copyFileSync(join(data, 'image_feat.npy'), join(one, 'image_feat.npy'));
  let r = train(one, 'one', '--teacher', 'ckd', '--force-kd');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--teacher ckd with one modality.*reduces to the PromptMM teacher/);
  assert.equal(JSON.parse(r.stdout).teacherKind, 'promptmm');
  assert.equal(meta('one', 'teacher').model, 'promptmm-teacher');
  assert.ok(!existsSync(join(repo, 'one', 'checkpoints', 'unimodal-image')));
  // a third, dead modality beside the two live ones
  const dead = join(root, 'dead');
  mkdirSync(dead);
  for (const f of ['synthetic.inter', 'image_feat.npy', 'audio_feat.npy']) copyFileSync(join(data, f), join(dead, f));
  writeFileSync(join(dead, 'text_feat.npy'), encodeNpy(new Float32Array(120 * 4), [120, 4]));
  r = train(dead, 'dead', '--teacher', 'ckd', '--force-kd');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /modality text \(.*text_feat\.npy\) is all zeros/);
  assert.deepEqual(meta('dead', 'teacher').modalities.map((m: { name: string }) => m.name).sort(), ['audio', 'image']);
  assert.ok(!existsSync(join(repo, 'dead', 'checkpoints', 'unimodal-text')));
  // every modality dead: the plain student, with a warning
  const allDead = join(root, 'alldead');
  mkdirSync(allDead);
  copyFileSync(join(data, 'synthetic.inter'), join(allDead, 'synthetic.inter'));
  writeFileSync(join(allDead, 'text_feat.npy'), encodeNpy(new Float32Array(120 * 4), [120, 4]));
  r = train(allDead, 'alldead');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).mode, 'plain');
  assert.match(r.stderr, /every feature file of the dataset is dead/);
});

test('teacher guard: a teacher below the plain student of the same budget is not distilled unless --force-kd; the plain student is cached', () => {
  // a teacher that barely moves from its random start
  const weak = ['--teacher-lr', '1e-7'];
  const r = train(data, 'g', ...weak);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.guard.decision, 'skipped');
  assert.ok(out.guard.teacher <= out.guard.plain, JSON.stringify(out.guard));
  assert.equal(out.guard.cached, false);
  assert.equal(out.mode, 'plain');
  assert.match(r.stderr, /teacher guard: the teacher's validation recall@20 is NOT above the plain student's/);
  // the run's student is the plain one (what export serves)
  assert.equal(meta('g', 'student').objective, 'bpr');
  assert.deepEqual(meta('g', 'student').metrics.val, meta('g', 'plain').metrics.val);
  // forced (even with --resume onto the adopted plain student): KD runs, the plain student of the same settings is reused
  const f = train(data, 'g', ...weak, '--stage', 'student', '--force-kd', '--resume');
  assert.equal(f.code, 0, f.stderr);
  const of = JSON.parse(f.stdout);
  assert.equal(of.guard.decision, 'forced');
  assert.equal(of.guard.cached, true);
  assert.equal(of.plain, undefined);
  assert.equal(meta('g', 'student').objective, 'kd');
  // another budget is not the same plain student: trained again
  const b = train(data, 'g', ...weak, '--stage', 'student', '--epochs', '2');
  assert.equal(b.code, 0, b.stderr);
  assert.equal(JSON.parse(b.stdout).guard.cached, false);
});
