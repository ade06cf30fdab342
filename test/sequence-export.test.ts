/** A SASRec checkpoint exported as a sequential bundle: its files, what they hold, and the checks that refuse a broken one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpyInt32, parseNpyInt32, readNpy } from '../core/npy.js';
import { userSequences } from '../data/sequences.js';
import { ExportError, exportBundle } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { BUNDLE_FILES, SEQUENCE_FILES, type Manifest } from '../repository/bundle-format.js';
import { buildSequenceModel } from '../repository/onnx-sequence-graph.js';
import { SasrecForward } from '../repository/sasrec-forward.js';
import { sha256File, versionDir } from '../repository/versions.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { randomSasrecArrays, sasrecRepo, saveRandomSasrecCheckpoint } from '../test-support/sasrec-checkpoint.js';
import { HNSW, quietLog } from '../test-support/serving.js';

const { repo, data, input, shape } = sasrecRepo('sq');
const dir = versionDir(repo, 'sq', 1);
const load = (d: string) => loadServingModel(d, { providers: ['cpu'], log: quietLog });

test('the bundle holds sequence.onnx, the last maxLen train + validation items of each user in order, and a sasrec manifest', () => {
  const m = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.manifest), 'utf8')) as Manifest;
  assert.equal(m.model, 'sasrec');
  assert.deepEqual(m.sequence, { maxLen: 6, blocks: 2, heads: 2, ffDim: 16, lnEps: 1e-5, opset: 17, inputs: ['items'], outputs: ['user'] });
  for (const f of [SEQUENCE_FILES.model, SEQUENCE_FILES.offsets, SEQUENCE_FILES.items]) assert.ok(m.files[f], f);
  const off = parseNpyInt32(readFileSync(join(dir, SEQUENCE_FILES.offsets)), 'o').data;
  const items = parseNpyInt32(readFileSync(join(dir, SEQUENCE_FILES.items)), 'i').data;
  const full = userSequences(data, 1);
  let truncated = 0;
  for (let u = 0; u < data.nUsers; u++) {
    const all = Array.from(full.indices.subarray(full.indptr[u], full.indptr[u + 1]));
    if (all.length > shape.maxLen) truncated++;
    assert.deepEqual(Array.from(items.subarray(off[u], off[u + 1])), all.slice(-shape.maxLen), `user ${u}`);
  }
  assert.ok(truncated > 0, 'the data has sequences longer than maxLen');
  // Item vectors are the item table's rows; the seen set is train + validation.
  const ie = readNpy(join(dir, BUNDLE_FILES.itemEmbeddings));
  assert.deepEqual(ie.shape, [data.nItems, shape.dim]);
  assert.deepEqual(Array.from(ie.data), Array.from(randomSasrecArrays(shape, 1)[0].data.subarray(0, data.nItems * shape.dim)));
  const u = 3;
  const seen = new Set([...data.trainByUser.indices.subarray(data.trainByUser.indptr[u], data.trainByUser.indptr[u + 1]), ...data.valByUser.indices.subarray(data.valByUser.indptr[u], data.valByUser.indptr[u + 1])]);
  assert.deepEqual(Array.from(input.seen.indices.subarray(input.seen.indptr[u], input.seen.indptr[u + 1])), [...seen].sort((a, b) => a - b));
});

test('the served encoder gives each user the reference forward\'s vector of its sequence (≤ 1e-4), also the bundle\'s user table', async () => {
  const m = await load(dir);
  try {
    assert.ok(m.encoder && m.sequences);
    const ref = new SasrecForward(randomSasrecArrays(shape, 1), shape);
    let worst = 0;
    for (const u of [0, 7, 21, 59]) {
      const seq = m.sequences.of(u);
      const want = ref.encodeSequence(seq)!;
      const got = (await m.vectors.vectorOf(u))!;
      for (let c = 0; c < shape.dim; c++) worst = Math.max(worst, Math.abs(got[c] - want[c]), Math.abs(m.userVector(u)[c] - want[c]));
    }
    assert.ok(worst <= 1e-4, `max abs difference ${worst}`);
  } finally {
    await m.close();
  }
});

/** A copy of the bundle with one file replaced (size and sha256 rewritten, so only the content check can refuse it). */
function corrupt(file: string, data: Uint8Array, manifest?: (m: Manifest) => void): string {
  const d = join(mkdtempSync(join(tmpdir(), 'promptmm-seqcheck-')), '1');
  cpSync(dir, d, { recursive: true });
  writeFileSync(join(d, file), data);
  const mf = join(d, BUNDLE_FILES.manifest);
  const m = JSON.parse(readFileSync(mf, 'utf8')) as Manifest;
  m.files[file] = { bytes: data.length, sha256: sha256File(join(d, file)) };
  manifest?.(m);
  writeFileSync(mf, JSON.stringify(m, null, 2) + '\n');
  return d;
}

const int32 = (file: string, edit: (a: Int32Array) => void) => {
  const { shape: s, data: a } = parseNpyInt32(readFileSync(join(dir, file)), file);
  edit(a);
  return encodeNpyInt32(a, s);
};

test('a sequential bundle with bad sequences or a foreign sequence.onnx is refused, naming the file', async () => {
  const cases: [string, string, RegExp][] = [
    [SEQUENCE_FILES.items, corrupt(SEQUENCE_FILES.items, int32(SEQUENCE_FILES.items, (a) => void (a[4] = data.nItems))), /^sequence_items\.npy: value 4 is 40, outside the catalog's rows \[0, 40\)$/],
    [SEQUENCE_FILES.offsets, corrupt(SEQUENCE_FILES.offsets, int32(SEQUENCE_FILES.offsets, (a) => void (a[2] = a[1] - 1))), /^sequence_offsets\.npy: offset 2 \(user 1\) is -?\d+, below offset 1/],
    [SEQUENCE_FILES.offsets, corrupt(SEQUENCE_FILES.offsets, int32(SEQUENCE_FILES.offsets, (a) => void (a[0] = 0)), (m) => void (m.sequence!.maxLen = 2)), /sequence_offsets\.npy: user \d+ has \d items, more than sequence\.maxLen \(2\)/],
    [SEQUENCE_FILES.model, corrupt(SEQUENCE_FILES.model, buildSequenceModel(randomSasrecArrays(shape, 99), shape)), /^sequence\.onnx: seq\.item_emb row 0 differs from item_embeddings\.npy/],
    [SEQUENCE_FILES.model, corrupt(SEQUENCE_FILES.model, buildSequenceModel(randomSasrecArrays({ ...shape, maxLen: 5 }, 1), { ...shape, maxLen: 5 })), /^sequence\.onnx: seq\.pos_emb has shape \(5, 16\), manifest\.json's sequence\.maxLen says \(6, 16\)$/],
    [BUNDLE_FILES.manifest, corrupt(SEQUENCE_FILES.model, readFileSync(join(dir, SEQUENCE_FILES.model)), (m) => void (m.model = 'gru4rec' as 'sasrec')), /^manifest\.json: model is "gru4rec"/],
  ];
  for (const [file, d, reason] of cases) {
    await assert.rejects(load(d), (e: Error) => reason.test(e.message), `${file}: ${reason}`);
  }
});

test('export refuses a sasrec checkpoint with a missing weight or one for another catalog, naming it', () => {
  const other = mkdtempSync(join(tmpdir(), 'promptmm-seqbad-'));
  saveRandomSasrecCheckpoint(other, 'bad', data, { dim: 8, blocks: 1, heads: 1, maxLen: 4, ffDim: 8 });
  const ok = bundleFromCheckpoint(other, 'bad');
  const arrays = [...(ok.sequence!.arrays as Map<string, { name: string; data: Float32Array }>).values()];
  const missing = { ...ok, sequence: { ...ok.sequence!, arrays: arrays.filter((a) => a.name !== 'seq.b0.ffn.w2') } };
  assert.throws(() => exportBundle(missing, { repo: other, hnsw: HNSW }), (e: Error) => e instanceof ExportError && /sequence encoder: weight "seq\.b0\.ffn\.w2" is missing/.test(e.message));
  const long = { ...ok, sequence: { ...ok.sequence!, sequences: { indptr: Int32Array.from({ length: data.nUsers + 1 }, (_, i) => i * 5), indices: new Int32Array(data.nUsers * 5) } } };
  assert.throws(() => exportBundle(long, { repo: other, hnsw: HNSW }), /sequences: user 0 has 5 items, more than maxLen 4/);
  const foreign = { ...ok, itemEmbeddings: ok.itemEmbeddings.map((x) => x + 1) };
  assert.throws(() => exportBundle(foreign, { repo: other, hnsw: HNSW }), /item embeddings: row 0 is not seq\.item_emb's/);
});
