/**
 * Feature files as public releases name them (`--feature NAME=FILE`, dataset.json, unknown `.npy`
 * refused unless ignored) and the split hashes: interactions and features apart, the checkpoint
 * check naming the part that differs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../data/dataset.js';
import { hashMismatch } from '../data/dataset-hash.js';
import { parseFeatureFlag } from '../data/feature-files.js';
import { assertDataError } from '../test-support/data-error.js';
import { encodeNpy } from '../core/npy.js';
import { generateSynthetic } from '../data/synthetic.js';
import { runCli } from '../test-support/cli.js';

const roots: string[] = [];
process.on('exit', () => roots.forEach((d) => rmSync(d, { recursive: true, force: true })));

function folder(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'dsf-'));
  roots.push(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

const feat = (rows: number, dim: number, v = 0.5) => encodeNpy(new Float32Array(rows * dim).fill(v), [rows, dim]);
const INTER = ['userID\titemID\tx_label', '0\t3\t0', '0\t1\t0', '0\t2\t1', '2\t0\t0', '2\t1\t2', '1\t1\t0', ''].join('\n');
const PUBLISHED = { 'toy.inter': INTER, 'all-MiniLM-L6-v2.npy': feat(4, 3), 'vggish.npy': feat(4, 2) };

test('a .npy file that no source names is an error naming every such file and the flags', () => {
  const dir = folder(PUBLISHED);
  assertDataError(() => loadDataset(dir), '2 .npy files are not a modality', 'all-MiniLM-L6-v2.npy', 'vggish.npy', '--feature all-MiniLM-L6-v2=all-MiniLM-L6-v2.npy', '--ignore-unknown-files');
  // ignored on request: no modality left
  assert.deepEqual(loadDataset(dir, { ignoreUnknownFiles: true }).modalities, []);
  // an ID-only load never refuses them (nothing would read them)
  assert.equal(loadDataset(dir, { features: false }).nItems, 4);
});

test('--feature NAME=FILE makes any .npy a modality; dataset.json does the same; the flag overrides it', () => {
  const dir = folder(PUBLISHED);
  const d = loadDataset(dir, { featureFiles: { text: 'all-MiniLM-L6-v2.npy', audio: 'vggish.npy' } });
  assert.deepEqual(d.modalities.map((m) => [m.name, m.dim]), [['audio', 2], ['text', 3]]);

  const withJson = folder({ ...PUBLISHED, 'image_feat.npy': feat(4, 5), 'dataset.json': JSON.stringify({ features: { text: 'all-MiniLM-L6-v2.npy', audio: 'vggish.npy' } }) });
  assert.deepEqual(loadDataset(withJson).modalities.map((m) => [m.name, m.dim]), [['audio', 2], ['image', 5], ['text', 3]]);
  // the flag overrides dataset.json by name; one file under two names is refused
  assert.deepEqual(loadDataset(withJson, { featureFiles: { audio: 'image_feat.npy', image: 'vggish.npy' } }).modalities.map((m) => [m.name, m.dim]), [['audio', 5], ['image', 2], ['text', 3]]);
  assert.throws(() => loadDataset(withJson, { featureFiles: { whisper: 'vggish.npy' } }), /vggish\.npy: named for two modalities, "audio" and "whisper"/);
});

test('bad mappings name the file and where it was named', () => {
  const dir = folder(PUBLISHED);
  assertDataError(() => loadDataset(dir, { featureFiles: { text: 'nope.npy' }, ignoreUnknownFiles: true }), 'nope.npy', 'not found', '--feature text=nope.npy');
  assertDataError(() => loadDataset(folder({ ...PUBLISHED, 'dataset.json': '{"features": ' })), 'dataset.json', 'not valid JSON');
  assertDataError(() => loadDataset(folder({ ...PUBLISHED, 'dataset.json': '{"feature": {}}' })), 'dataset.json', 'unknown field "feature"');
  assertDataError(() => loadDataset(folder({ ...PUBLISHED, 'dataset.json': '{"features": {"text": 3}}' })), 'dataset.json', '"features"."text" must be a file name');
  assertDataError(() => loadDataset(folder({ ...PUBLISHED, 'dataset.json': '{"features": {"text": "gone.npy"}}' }), { ignoreUnknownFiles: true }), 'gone.npy', 'dataset.json "features"."text"');
  // a mapped file is checked like any feature file
  assertDataError(() => loadDataset(folder({ ...PUBLISHED, 'short.npy': feat(2, 3) }), { featureFiles: { text: 'short.npy' }, ignoreUnknownFiles: true }), 'short.npy', '2 rows', '4 items');
  assert.deepEqual(parseFeatureFlag('text=a b.npy'), ['text', 'a b.npy']);
  assert.throws(() => parseFeatureFlag('text'), /expected NAME=FILE/);
  assert.throws(() => parseFeatureFlag('te/xt=a.npy'), /modality name "te\/xt"/);
});

test('interactions and features are hashed apart; the check names the part that differs', () => {
  const a = loadDataset(folder({ 'toy.inter': INTER, 'image_feat.npy': feat(4, 2, 0.5) }));
  const b = loadDataset(folder({ 'toy.inter': INTER, 'image_feat.npy': feat(4, 2, 0.7) }));
  const renamed = loadDataset(folder({ 'toy.inter': INTER, 'audio_feat.npy': feat(4, 2, 0.5) }));
  const other = loadDataset(folder({ 'toy.inter': INTER.replace('1\t1\t0', '1\t2\t0'), 'image_feat.npy': feat(4, 2, 0.5) }));
  assert.equal(a.hash, b.hash);
  assert.notEqual(a.featuresHash, b.featuresHash);
  assert.notEqual(a.featuresHash, renamed.featuresHash, 'the modality name is part of the features hash');
  assert.notEqual(a.hash, other.hash);

  const trained = { name: 'toy', hash: a.hash, featuresHash: a.featuresHash };
  assert.equal(hashMismatch(trained, b, 'interactions'), null, 'an ID-only student needs only the interactions');
  assert.match(hashMismatch(trained, b, 'all') ?? '', /interactions of .* match but its feature files .* differ/);
  assert.match(hashMismatch(trained, other, 'interactions') ?? '', /interactions \(\.inter, ids\.json\) have hash .*, but those of/);
});

test('CLI: published names refused, then trained with --feature; eval --data of the ID-only student ignores the features', () => {
  const root = mkdtempSync(join(tmpdir(), 'dsf-cli-'));
  roots.push(root);
  const data = join(root, 'data');
  const repo = join(root, 'models');
  generateSynthetic({ dir: data, users: 120, items: 80, seed: 4 });
  renameSync(join(data, 'image_feat.npy'), join(data, 'clip-vit.npy'));
  renameSync(join(data, 'audio_feat.npy'), join(data, 'vggish.npy'));
  const train = (...extra: string[]) => runCli('train', '--data', data, '--name', 'm', '--repo', repo, '--epochs', '2', '--eval-every', '1', '--batch', '512', '--dim', '8', ...extra);
  let r = train('--student-only');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^promptmm: error: .*2 \.npy files are not a modality: clip-vit\.npy, vggish\.npy .*--feature .*--ignore-unknown-files/m);
  r = train('--student-only', '--feature', 'image=clip-vit.npy', '--feature', 'audio=vggish.npy');
  assert.equal(r.code, 0, r.stderr);
  r = train('--feature', 'image');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--feature.*expected NAME=FILE/);
  // the same interactions without the feature files: the ID-only student still evaluates
  const bare = join(root, 'bare');
  mkdirSync(bare);
  copyFileSync(join(data, 'synthetic.inter'), join(bare, 'synthetic.inter'));
  r = runCli('eval', '--name', 'm', '--repo', repo, '--data', bare, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(typeof JSON.parse(r.stdout)['recall@20'], 'number');
  // other interactions: refused, naming the interactions
  writeFileSync(join(bare, 'synthetic.inter'), readFileSync(join(data, 'synthetic.inter'), 'utf8').replace(/\n0\t(\d+)\t0\n/, '\n0\t$1\t1\n'));
  r = runCli('eval', '--name', 'm', '--repo', repo, '--data', bare);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /interactions \(\.inter, ids\.json\) have hash \w+, but those of .*bare have hash/);
});
