/** Issue 20: KDSR and ODMT distillation into the sequential student (units, then the CLI path to a bundle). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tf } from '../trainer/engine/backend.js';
import { writeNpy, readNpy } from '../core/npy.js';
import { Rng } from '../core/rng.js';
import { runCli } from '../test-support/cli.js';
import { writeSequentialDataset } from '../test-support/sequential-data.js';
import { loadDataset, type Modality } from '../data/dataset.js';
import { kdsrTeacher, checkSubvectors, correlationVector, nearest } from '../trainer/models/kdsr-teacher.js';
import { KdsrLoss, asyncScale, hardTargets, samplePairs } from '../trainer/models/kdsr.js';
import { Odmt, imtMaskValues, sigmoidRampup } from '../trainer/models/odmt.js';
import { SasRec } from '../trainer/models/sasrec.js';
import { SEQUENTIAL_DEFAULTS } from '../trainer/stages/sequential.js';
import { userSequences } from '../data/sequences.js';

await initEngine('wasm');
const root = mkdtempSync(join(tmpdir(), 'seq-kd-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

const N = 20;
function modality(name: string, dim: number, seed: number): Modality {
  const rng = new Rng(seed);
  return { name, file: `${name}_feat.npy`, dim, data: Float32Array.from({ length: N * dim }, () => rng.normal()) };
}

test('kdsr teacher: holistic = cosine, codes are the nearest codeword of the D sub-vector cosines, symmetric, cached', () => {
  const mods = [modality('image', 16, 1), modality('text', 8, 2)];
  const dir = join(root, 'cache');
  for (const quantizer of ['vq', 'kmeans'] as const) {
    const t = kdsrTeacher(mods, N, { subvectors: 4, codes: 6, quantizer }, 'h', join(dir, quantizer));
    const m = mods[0];
    let dot = 0, na = 0, nb = 0;
    for (let k = 0; k < 16; k++) {
      dot += m.data[3 * 16 + k] * m.data[7 * 16 + k];
      na += m.data[3 * 16 + k] ** 2;
      nb += m.data[7 * 16 + k] ** 2;
    }
    assert.ok(Math.abs(t.holistic(0, 3, 7) - dot / Math.sqrt(na * nb)) < 1e-5);
    const s = t.modalities[0];
    const v = new Float32Array(4);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        assert.equal(t.code(0, i, j), t.code(0, j, i));
        correlationVector(s, i, j, 4, v);
        assert.equal(t.code(0, i, j), nearest(s.codebook, v, 6, 4));
        assert.ok(v.every((x) => x >= -1.0001 && x <= 1.0001));
      }
    }
    // more than one code is used (the codebook is trained, not constant)
    assert.ok(new Set(s.codes).size > 1);
    // a second run reads the cache: the same codebook and codes
    const again = kdsrTeacher(mods, N, { subvectors: 4, codes: 6, quantizer }, 'h', join(dir, quantizer));
    assert.deepEqual(again.modalities[0].codebook, s.codebook);
    assert.deepEqual(again.modalities[1].codes, t.modalities[1].codes);
    // other features: not the cached statistics
    assert.ok(readdirSync(join(dir, quantizer)).includes('meta.json'));
  }
  assert.throws(() => checkSubvectors([modality('image', 10, 3)], 4), /modality "image" \(image_feat\.npy\) has dimension 10, not divisible by --kdsr-subvectors 4/);
  assert.throws(() => kdsrTeacher([], N, { subvectors: 4, codes: 6, quantizer: 'vq' }, 'h'), /needs item features/);
});

test('kdsr pairs: anchors from the batch, the first half of the partners from the anchor\'s own window, the rest anywhere', () => {
  const pad = N;
  const batch = { inputs: Int32Array.from([pad, 1, 2, 3, 4, 5, 6, 7]), targets: Int32Array.from([pad, 2, 3, 9, 5, 6, 7, 11]), batch: 2, width: 4 };
  const rows = [new Set([1, 2, 3, 9]), new Set([4, 5, 6, 7, 11])];
  const p = samplePairs(batch, pad, 50, 6, new Rng(3));
  for (let a = 0; a < 50; a++) {
    const row = rows.find((r) => r.has(p.anchors[a]))!;
    assert.ok(row, `anchor ${p.anchors[a]}`);
    for (let k = 0; k < 3; k++) assert.ok(row.has(p.partners[a * 6 + k]));
    for (let k = 3; k < 6; k++) assert.ok(p.partners[a * 6 + k] >= 0 && p.partners[a * 6 + k] < N);
  }
  assert.deepEqual([...hardTargets(Float32Array.from([0.1, 0.5, 0.3, 0.9]), 1, 4)], [-1, 1, 1, 1]);
  assert.equal(asyncScale(1, 10), 0.1);
  assert.ok(Math.abs(asyncScale(6, 10) - 0.55) < 1e-12);
  assert.equal(asyncScale(11, 10), 1);
  assert.equal(asyncScale(30, 10), 1);
});

test('kdsr loss: its gradient moves the item embeddings toward the teacher correlations', () => {
  const mods = [modality('image', 16, 4)];
  const t = kdsrTeacher(mods, N, { subvectors: 4, codes: 5, quantizer: 'kmeans' }, 'h');
  for (const match of ['soft', 'hard'] as const) {
    const kd = new KdsrLoss(t, 8, { holisticWeight: 1, dissectedWeight: 1, tau: 1.5, match, anchors: 30, partners: 6, holistic: true, dissected: true, asyncEpochs: 0 }, 1);
    const rng = new Rng(5);
    const table = tf.variable(tf.randomNormal([N + 1, 8], 0, 0.1, 'float32', 7)) as tf.Variable<tf.Rank.R2>;
    const anchors = Int32Array.from({ length: 30 }, (_, i) => i % N);
    const partners = Int32Array.from({ length: 180 }, () => rng.int(N));
    const pairs = { anchors, partners, A: 30, K: 6 };
    const opt = tf.train.adam(0.05);
    const first = tf.tidy(() => kd.loss(table, pairs).dataSync()[0]);
    for (let s = 0; s < 60; s++) opt.minimize(() => kd.loss(table, pairs), false, [table, ...kd.variables]);
    const last = tf.tidy(() => kd.loss(table, pairs).dataSync()[0]);
    assert.ok(last < first * 0.8, `${match}: ${first} → ${last}`);
    const terms = kd.lossTerms();
    assert.ok('holistic.image' in terms && 'dissected.image' in terms);
    table.dispose();
    kd.dispose();
  }
});

test('odmt: with the IMT mask the modality tables do not depend on the ID embeddings; without it they do; ramp-up', () => {
  const dir = join(root, 'odmt-unit');
  writeSequentialDataset(dir, { users: 30, items: N, minLen: 4, maxLen: 8, seed: 2 });
  writeNpy(join(dir, 'image_feat.npy'), modality('image', 16, 5).data, [N, 16]);
  writeNpy(join(dir, 'text_feat.npy'), modality('text', 8, 6).data, [N, 8]);
  const data = loadDataset(dir);
  const shape = { dim: 8, blocks: 1, heads: 1, maxLen: 8, ffDim: 8, nItems: N };
  for (const imtMask of [true, false]) {
    const id = new SasRec(shape, { seed: 1 });
    const o = new Odmt(data, id, { ...SEQUENTIAL_DEFAULTS, imtMask });
    const before = tf.tidy(() => o.itemTables().map((t) => t.arraySync() as number[][]));
    const idEmb = o.variables.find((v) => v.name.startsWith('odmt.id_emb'))!;
    idEmb.assign(tf.mul(idEmb, 3));
    const after = tf.tidy(() => o.itemTables().map((t) => t.arraySync() as number[][]));
    const moved = (k: number) => before[k].some((row, r) => row.some((x, c) => Math.abs(x - after[k][r][c]) > 1e-6));
    assert.equal(moved(0), true, 'the ID table follows the ID embeddings');
    assert.equal(moved(1), !imtMask, `modality table, mask ${imtMask}`);
    assert.equal(moved(2), !imtMask);
    o.dispose();
    id.dispose();
  }
  assert.deepEqual([...imtMaskValues(3, true)].map((x) => x < 0), [false, false, false, true, false, false, true, false, false]);
  assert.equal(sigmoidRampup(0, 10), Math.exp(-5));
  assert.equal(sigmoidRampup(10, 10), 1);
  assert.equal(sigmoidRampup(3, 0), 1);
});

const data = join(root, 'walk');
writeSequentialDataset(data, { users: 60, items: N, minLen: 4, maxLen: 10, seed: 11 });
const repo = join(root, 'models');
/** ODMT's per-branch validation N@10 as the training reported it, and as dumps of its checkpoint score it. */
test('odmt frozen teacher: its logits at a target position are the ensemble scores of that prefix (the fused score dump --branch ensemble writes)', () => {
  const dir = join(root, 'odmt-frozen');
  writeSequentialDataset(dir, { users: 30, items: N, minLen: 4, maxLen: 8, seed: 4 });
  writeNpy(join(dir, 'image_feat.npy'), modality('image', 16, 5).data, [N, 16]);
  writeNpy(join(dir, 'text_feat.npy'), modality('text', 8, 6).data, [N, 8]);
  const d = loadDataset(dir);
  const shape = { dim: 8, blocks: 1, heads: 1, maxLen: 8, ffDim: 8, nItems: N };
  const id = new SasRec(shape, { seed: 3 });
  const o = new Odmt(d, id, { ...SEQUENTIAL_DEFAULTS, seed: 5 });
  const frozen = o.frozen();
  const seqs = userSequences(d, 0);
  const u = [...Array(d.nUsers).keys()].find((x) => seqs.indptr[x + 1] - seqs.indptr[x] >= 3 && d.valByUser.indptr[x + 1] > d.valByUser.indptr[x])!;
  const seq = seqs.indices.subarray(seqs.indptr[u], seqs.indptr[u + 1]);
  // one row: the user's train sequence, the only target its validation item after the last position
  const width = Math.min(seq.length, shape.maxLen);
  const inputs = Int32Array.from(seq.subarray(seq.length - width));
  const targets = new Int32Array(width).fill(N);
  targets[width - 1] = d.valByUser.indices[d.valByUser.indptr[u]];
  const z = tf.tidy(() => frozen.logits({ inputs, targets, batch: 1, width }).arraySync() as number[][]);
  const e = o.splitVectors(d, 'val', 'ensemble', [u]);
  assert.equal(z.length, 1);
  for (let i = 0; i < N; i++) {
    let dot = 0;
    for (let c = 0; c < e.dim; c++) dot += e.users[u * e.dim + c] * e.items[i * e.dim + c];
    assert.ok(Math.abs(z[0][i] - dot) < 1e-4, `item ${i}: ${z[0][i]} vs ${dot}`);
  }
  // evaluation mode: no dropout, the same logits again
  const again = tf.tidy(() => frozen.logits({ inputs, targets, batch: 1, width }).arraySync() as number[][]);
  assert.deepEqual(again, z);
  frozen.dispose();
  o.dispose();
  id.dispose();
});

const odmtReport = new Map<string, number>();
const branchNdcg = new Map<string, number>();
const small = ['--dim', '8', '--max-len', '8', '--seq-blocks', '1', '--batch', '32', '--eval-every', '1', '--no-progress', '--epochs', '2'];

test('bad input: --seq-kd without feature files names what is missing; a dimension not divisible by D names the modality', () => {
  for (const m of ['kdsr', 'odmt']) {
    const r = runCli('train', '--data', data, '--name', `nf-${m}`, '--repo', repo, '--model', 'sasrec', '--seq-kd', m, ...small);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`--seq-kd ${m}: dataset seq .* has no item feature files`));
    assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
  }
  const odd = join(root, 'odd');
  writeSequentialDataset(odd, { users: 30, items: N, minLen: 4, maxLen: 8, seed: 3 });
  writeNpy(join(odd, 'image_feat.npy'), modality('image', 12, 1).data, [N, 12]);
  const r = runCli('train', '--data', odd, '--name', 'odd', '--repo', repo, '--model', 'sasrec', '--seq-kd', 'kdsr', ...small);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /modality "image" \([^)]*image_feat\.npy\) has dimension 12, not divisible by --kdsr-subvectors 8/);
});

test('--seq-kd kdsr and odmt train, export and serve through the plain student\'s path; the manifest names the teacher', () => {
  writeNpy(join(data, 'image_feat.npy'), modality('image', 16, 8).data, [N, 16]);
  writeNpy(join(data, 'text_feat.npy'), modality('text', 8, 9).data, [N, 8]);
  for (const m of ['kdsr', 'odmt']) {
    const r = runCli('train', '--data', data, '--name', m, '--repo', repo, '--model', 'sasrec', '--seq-kd', m, ...small);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout).student;
    assert.equal(rep.seqKd, m);
    if (m === 'odmt') {
      for (const b of ['id', 'image', 'text', 'ensemble']) {
        assert.ok(rep.odmtValidation[b]['ndcg@10'] >= 0, b);
        odmtReport.set(b, rep.odmtValidation[b]['ndcg@10']);
      }
      // the ID branch is what the loop validated
      assert.ok(Math.abs(rep.odmtValidation.id['ndcg@10'] - rep.val['ndcg@10']) < 1e-9);
    } else {
      assert.ok(readdirSync(join(repo, m, 'checkpoints', 'kdsr-teacher')).includes('meta.json'));
    }
    const ex = runCli('export', '--name', m, '--repo', repo, '--hnsw-m', '8');
    assert.equal(ex.code, 0, ex.stderr);
    const manifest = JSON.parse(readFileSync(join(repo, m, '1', 'manifest.json'), 'utf8'));
    assert.equal(manifest.model, 'sasrec');
    assert.equal(manifest.training.seqKd, m);
    // eval from the checkpoint (the served student alone) reproduces the training's test figures
    const ev = JSON.parse(runCli('eval', '--name', m, '--repo', repo, '--split', 'test', '--json').stdout);
    const meta = JSON.parse(readFileSync(join(repo, m, 'checkpoints', 'student', 'model.json'), 'utf8')).meta;
    assert.ok(Math.abs(ev['ndcg@10'] - meta.metrics.test['ndcg@10']) < 1e-6, `${m}: eval ${ev['ndcg@10']} vs ${meta.metrics.test['ndcg@10']}`);
    const items = readNpy(join(repo, m, '1', 'item_embeddings.npy'));
    assert.deepEqual(items.shape, [N, 8]);
  }
});

test('dump --branch: an ODMT checkpoint\'s other branches and their ensemble, as the training report scored them', async () => {
  const { evaluateWithUsers } = await import('../trainer/eval.js');
  const ck = JSON.parse(readFileSync(join(repo, 'odmt', 'checkpoints', 'student', 'model.json'), 'utf8')).meta;
  const d = loadDataset(data, { features: false });
  for (const [branch, dim] of [['ensemble', 24], ['text', 8], ['id', 8]] as const) {
    const out = join(root, `dump-${branch}`);
    const r = runCli('dump', '--name', 'odmt', '--repo', repo, '--split', 'val', '--out', out, '--branch', branch);
    assert.equal(r.code, 0, r.stderr);
    const U = readNpy(join(out, 'user_embeddings.npy'));
    const I = readNpy(join(out, 'item_embeddings.npy'));
    assert.deepEqual([U.shape, I.shape], [[60, dim], [N, dim]]);
    const m = evaluateWithUsers(U.data as Float32Array, I.data as Float32Array, dim, d, { split: 'val', ks: [10] }).metrics;
    const reported = branch === 'id' ? ck.metrics.val['ndcg@10'] : undefined;
    if (reported !== undefined) assert.ok(Math.abs(m['ndcg@10'] - reported) < 1e-6, `${branch}: ${m['ndcg@10']} vs ${reported}`);
    branchNdcg.set(branch, m['ndcg@10']);
  }
  // the report's figures (trained above, same checkpoint): each branch and the ensemble reproduced
  for (const [b, v] of branchNdcg) assert.ok(Math.abs(v - odmtReport.get(b)!) < 1e-6, `${b}: dump ${v} vs report ${odmtReport.get(b)}`);
  const bad = runCli('dump', '--name', 'odmt', '--repo', repo, '--out', join(root, 'dump-bad'), '--branch', 'audio');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no branch "audio" \(id, image, text, ensemble\)/);
  const notOdmt = runCli('dump', '--name', 'kdsr', '--repo', repo, '--out', join(root, 'dump-kdsr'), '--branch', 'ensemble');
  assert.equal(notOdmt.code, 1);
  assert.match(notOdmt.stderr, /--branch ensemble needs a checkpoint trained with --seq-kd odmt \(this one: --seq-kd kdsr\)/);
});

test('--odmt-student distilled: the ODMT run is kept as the teacher, a fresh ID-only student learns from its ensemble, a second run reuses the teacher', async () => {
  const r = runCli('train', '--data', data, '--name', 'odmt-distilled', '--repo', repo, '--model', 'sasrec', '--seq-kd', 'odmt', '--odmt-student', 'distilled', '--no-online-kd', ...small);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout).student;
  assert.equal(rep.odmtStudent, 'distilled');
  const teacherDir = join(repo, 'odmt-distilled', 'checkpoints', 'odmt-teacher');
  assert.equal(rep.odmtTeacher.checkpoint, teacherDir);
  assert.ok(rep.odmtTeacher.odmtValidation.ensemble['ndcg@10'] >= 0);
  // the teacher's ensemble as the student stage measured it = as the teacher's own run did
  assert.ok(Math.abs(rep.odmtTeacherValidation.ensemble['ndcg@10'] - rep.odmtTeacher.odmtValidation.ensemble['ndcg@10']) < 1e-6);
  const tMeta = JSON.parse(readFileSync(join(teacherDir, 'model.json'), 'utf8')).meta;
  assert.ok(tMeta.finished);
  assert.equal(tMeta.config.odmtStudent, 'branch');
  // the student's checkpoint: the plain SASRec's arrays only (and Adam's), its config says how it was trained
  const sMeta = JSON.parse(readFileSync(join(repo, 'odmt-distilled', 'checkpoints', 'student', 'model.json'), 'utf8')).meta;
  assert.equal(sMeta.config.odmtStudent, 'distilled');
  const { loadCheckpoint } = await import('../trainer/checkpoint.js');
  const names = [...loadCheckpoint(join(repo, 'odmt-distilled', 'checkpoints', 'student')).arrays.keys()];
  assert.ok(names.includes('seq.item_emb'));
  assert.equal(names.filter((k) => k.startsWith('odmt.')).length, 0);
  const ex = runCli('export', '--name', 'odmt-distilled', '--repo', repo, '--hnsw-m', '8');
  assert.equal(ex.code, 0, ex.stderr);
  const manifest = JSON.parse(readFileSync(join(repo, 'odmt-distilled', '1', 'manifest.json'), 'utf8'));
  assert.deepEqual([manifest.model, manifest.training.seqKd, manifest.training.odmtStudent], ['sasrec', 'odmt', 'distilled']);
  assert.deepEqual(readNpy(join(repo, 'odmt-distilled', '1', 'item_embeddings.npy')).shape, [N, 8]);
  // dump --branch ensemble of the distilled student: its teacher's ensemble
  const out = join(root, 'dump-distilled-ensemble');
  const du = runCli('dump', '--name', 'odmt-distilled', '--repo', repo, '--split', 'val', '--out', out, '--branch', 'ensemble');
  assert.equal(du.code, 0, du.stderr);
  assert.deepEqual(readNpy(join(out, 'user_embeddings.npy')).shape, [60, 24]);
  // again, starting from the trained ID branch: the finished teacher is reused, not retrained
  const again = runCli('train', '--data', data, '--name', 'odmt-distilled', '--repo', repo, '--model', 'sasrec', '--seq-kd', 'odmt', '--odmt-student', 'distilled', '--no-online-kd', '--odmt-distill-start', 'branch', ...small);
  assert.equal(again.code, 0, again.stderr);
  const rep2 = JSON.parse(again.stdout).student;
  assert.equal(rep2.odmtTeacher.reused, true);
  assert.equal(rep2.odmtTeacher.bestEpoch, tMeta.epoch);
});
