/** Bundles with valid checksums but bad contents (CSR offsets, ranges, NaN, shapes, ids, index, version) are refused, naming the file; the server keeps serving the good one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy, encodeNpyInt32, parseNpyInt32, readNpy } from '../core/npy.js';
import { buildHnswIndex } from '../repository/hnsw-index.js';
import { buildScoringModel } from '../repository/onnx-scoring-graph.js';
import { sha256File, versionDir } from '../repository/versions.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { HNSW, quietLog, repoWith, smallBundle, testServer } from '../test-support/serving.js';

const { repo: goodRepo, input } = repoWith('m');
const good = versionDir(goodRepo, 'm', 1);
const D = input.dim;
const N_ITEMS = input.nItems;

/** A fresh repository holding a copy of the good version 1 in folder `folder`. */
function copyOfGood(folder = '1'): { repo: string; dir: string } {
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-check-'));
  const dir = join(repo, 'm', folder);
  cpSync(good, dir, { recursive: true });
  return { repo, dir };
}

/** Replaces one file of a bundle and rewrites its size and sha256 in the manifest, so verification still passes. */
function rewrite(dir: string, file: string, data: Uint8Array): void {
  writeFileSync(join(dir, file), data);
  const mf = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(mf, 'utf8'));
  m.files[file] = { bytes: data.length, sha256: sha256File(join(dir, file)) };
  writeFileSync(mf, JSON.stringify(m, null, 2) + '\n');
}

function editInt32(dir: string, file: string, edit: (a: Int32Array) => void): void {
  const { shape, data } = parseNpyInt32(readFileSync(join(dir, file)), file);
  edit(data);
  rewrite(dir, file, encodeNpyInt32(data, shape));
}

function editFloat(dir: string, file: string, edit: (a: Float32Array) => void): void {
  const { shape, data } = readNpy(join(dir, file));
  edit(data);
  rewrite(dir, file, encodeNpy(data, shape));
}

function editIds(dir: string, edit: (ids: { users: unknown[]; items: unknown[] }) => void): void {
  const ids = JSON.parse(readFileSync(join(dir, 'ids.json'), 'utf8'));
  edit(ids);
  rewrite(dir, 'ids.json', Buffer.from(JSON.stringify(ids)));
}

const off = input.seen.indptr;
/** A user row with at least two seen items. */
const heavy = Array.from({ length: input.nUsers }, (_, u) => u).find((u) => off[u + 1] - off[u] >= 2)!;

const load = (dir: string) => loadServingModel(dir, { providers: ['cpu'], log: quietLog });

test('the corruption helper keeps checksums valid: a rewritten but equal bundle still loads', async () => {
  const { dir } = copyOfGood();
  editIds(dir, () => undefined);
  editInt32(dir, 'seen_offsets.npy', () => undefined);
  const m = await load(dir);
  assert.equal(m.nItems, N_ITEMS);
  assert.equal(m.version, 1);
  await m.close();
});

const cases: { what: string; folder?: string; corrupt: (dir: string) => void; reason: RegExp }[] = [
  {
    what: 'offsets that decrease',
    corrupt: (dir) => editInt32(dir, 'seen_offsets.npy', (o) => void (o[3] = o[2] - 1)),
    reason: /^seen_offsets\.npy: offset 3 \(user 2\) is \d+, below offset 2 \(\d+\): offsets must not decrease$/,
  },
  {
    // The hang: csrHas's binary search never ends on a row that starts below 0.
    what: 'a negative offset',
    corrupt: (dir) => editInt32(dir, 'seen_offsets.npy', (o) => void (o[2] = -o[o.length - 1])),
    reason: /^seen_offsets\.npy: offset 2 \(user 1\) is -\d+, below offset 1 \(\d+\)/,
  },
  {
    what: 'a last offset beyond seen_items',
    corrupt: (dir) => editInt32(dir, 'seen_offsets.npy', (o) => void (o[o.length - 1] += 5)),
    reason: /^seen_offsets\.npy: the last offset is \d+, but seen_items\.npy holds \d+ items/,
  },
  {
    what: 'a first offset that is not 0',
    corrupt: (dir) => editInt32(dir, 'seen_offsets.npy', (o) => void (o[0] = -1)),
    reason: /^seen_offsets\.npy: offset 0 is -1: the first offset must be 0/,
  },
  {
    what: 'seen_offsets of the wrong length',
    corrupt: (dir) => rewrite(dir, 'seen_offsets.npy', encodeNpyInt32(off.subarray(0, off.length - 1), [off.length - 1])),
    reason: /^seen_offsets\.npy: shape \(200\), expected \(201\)/,
  },
  {
    what: 'a seen item outside the catalog',
    corrupt: (dir) => editInt32(dir, 'seen_items.npy', (s) => void (s[off[6] - 1] = N_ITEMS)),
    reason: /^seen_items\.npy: value \d+ \(user 5\) is 300, outside the catalog's rows \[0, 300\)/,
  },
  {
    what: 'a negative seen item',
    corrupt: (dir) => editInt32(dir, 'seen_items.npy', (s) => void (s[off[5]] = -1)),
    reason: /^seen_items\.npy: value \d+ \(user 5\) is -1, outside/,
  },
  {
    what: 'an unsorted row',
    corrupt: (dir) =>
      editInt32(dir, 'seen_items.npy', (s) => {
        const p = off[heavy];
        [s[p], s[p + 1]] = [s[p + 1], s[p]];
      }),
    reason: new RegExp(`^seen_items\\.npy: value ${off[heavy] + 1} \\(user ${heavy}\\) is \\d+, not above the one before it`),
  },
  {
    what: 'an item repeated in a row',
    corrupt: (dir) => editInt32(dir, 'seen_items.npy', (s) => void (s[off[heavy] + 1] = s[off[heavy]])),
    reason: /^seen_items\.npy: value \d+ \(user \d+\) is \d+, not above the one before it \(\d+\): each user's items must be sorted ascending without repeats/,
  },
  {
    what: 'a NaN item embedding',
    corrupt: (dir) => editFloat(dir, 'item_embeddings.npy', (e) => void (e[7 * D + 3] = NaN)),
    reason: /^item_embeddings\.npy: 1 non-finite value \(NaN or ±Infinity\), the first in row 7 column 3 \(NaN\)/,
  },
  {
    what: 'infinite user embeddings',
    corrupt: (dir) =>
      editFloat(dir, 'user_embeddings.npy', (e) => {
        e[5 * D] = Infinity;
        e[9 * D + 1] = -Infinity;
      }),
    reason: /^user_embeddings\.npy: 2 non-finite values \(NaN or ±Infinity\), the first in row 5 column 0 \(Infinity\)/,
  },
  {
    what: 'a user table with a row missing',
    corrupt: (dir) => rewrite(dir, 'user_embeddings.npy', encodeNpy(input.userEmbeddings.subarray(0, (input.nUsers - 1) * D), [input.nUsers - 1, D])),
    reason: /^user_embeddings\.npy: shape \(199, 16\), expected \(200, 16\)/,
  },
  {
    what: 'an item table of another dim',
    corrupt: (dir) => rewrite(dir, 'item_embeddings.npy', encodeNpy(input.itemEmbeddings, [N_ITEMS * 2, D / 2])),
    reason: /^item_embeddings\.npy: shape \(600, 8\), expected \(300, 16\)/,
  },
  {
    what: 'a duplicate item id',
    corrupt: (dir) => editIds(dir, (ids) => void (ids.items[10] = 'i3')),
    reason: /^ids\.json: item id "i3" appears at rows 3 and 10: ids must be unique/,
  },
  {
    what: 'a duplicate user id',
    corrupt: (dir) => editIds(dir, (ids) => void (ids.users[7] = 'u2')),
    reason: /^ids\.json: user id "u2" appears at rows 2 and 7: ids must be unique/,
  },
  {
    what: 'an id that is not a string',
    corrupt: (dir) => editIds(dir, (ids) => void (ids.users[4] = 4)),
    reason: /^ids\.json: users\[4\] is 4: ids must be strings/,
  },
  {
    what: 'too few item ids',
    corrupt: (dir) => editIds(dir, (ids) => void ids.items.pop()),
    reason: /^ids\.json: 299 items, manifest\.json says 300/,
  },
  {
    what: 'ids.json that is not JSON',
    corrupt: (dir) => rewrite(dir, 'ids.json', Buffer.from('{"users": [')),
    reason: /^ids\.json: not valid JSON/,
  },
  {
    what: 'a negative popularity',
    corrupt: (dir) => editInt32(dir, 'item_popularity.npy', (p) => void (p[4] = -1)),
    reason: /^item_popularity\.npy: item 4 has popularity -1: counts must not be negative/,
  },
  {
    what: 'an HNSW index over vectors of another dim',
    corrupt: (dir) => {
      buildHnswIndex(input.itemEmbeddings.subarray(0, N_ITEMS * 8), N_ITEMS, 8, HNSW, join(dir, 'items.hnsw'));
      rewrite(dir, 'items.hnsw', readFileSync(join(dir, 'items.hnsw')));
    },
    reason: /^items\.hnsw: vectors of 32 bytes \(8 dimensions\), manifest\.json says dim 16/,
  },
  {
    what: 'an HNSW index of fewer items',
    corrupt: (dir) => {
      buildHnswIndex(input.itemEmbeddings, N_ITEMS - 1, D, HNSW, join(dir, 'items.hnsw'));
      rewrite(dir, 'items.hnsw', readFileSync(join(dir, 'items.hnsw')));
    },
    reason: /^items\.hnsw: 299 items, manifest\.json says 300/,
  },
  {
    what: 'an HNSW index with a label twice',
    corrupt: (dir) => {
      // hnswlib's addPoint replaces a point whose label exists, so patch the file: element 5 gets element 6's label.
      const buf = readFileSync(join(dir, 'items.hnsw'));
      const perElement = Number(buf.readBigUInt64LE(24));
      const labelOffset = Number(buf.readBigUInt64LE(32));
      const labelAt = (e: number) => 96 + e * perElement + labelOffset;
      buf.writeBigUInt64LE(buf.readBigUInt64LE(labelAt(6)), labelAt(5));
      rewrite(dir, 'items.hnsw', buf);
    },
    reason: /^items\.hnsw: 299 distinct labels for its 300 items: some item row is missing or labels two elements/,
  },
  {
    what: 'an ONNX item table that is not the item embeddings',
    corrupt: (dir) => rewrite(dir, 'model.onnx', buildScoringModel(smallBundle('m', 2).itemEmbeddings, N_ITEMS, D)),
    reason: /^model\.onnx: item_table row 0 differs from item_embeddings\.npy/,
  },
  {
    what: 'an ONNX item table of another shape',
    corrupt: (dir) => rewrite(dir, 'model.onnx', buildScoringModel(input.itemEmbeddings.subarray(0, (N_ITEMS - 1) * D), N_ITEMS - 1, D)),
    reason: /^model\.onnx: item_table has shape \(299, 16\), manifest\.json says \(300, 16\)/,
  },
  {
    // A folder copied by hand: the manifest still says 1.
    what: 'a manifest version that differs from its folder',
    folder: '2',
    corrupt: () => undefined,
    reason: /^manifest\.json: version is 1 but the bundle is in folder 2: they must be the same/,
  },
];

for (const c of cases) {
  test(`a bundle with ${c.what} is refused, naming the file`, async () => {
    const { dir } = copyOfGood(c.folder);
    c.corrupt(dir);
    await assert.rejects(load(dir), (err: Error) => {
      assert.match(err.message, c.reason);
      return true;
    });
  });
}

test('a server given a bad version keeps serving the good one; a version-folder mismatch is refused once, not on every poll', async () => {
  const { repo } = copyOfGood();
  const s = await testServer(repo, 'm');
  try {
    const auth = { authorization: 'Bearer secret' };
    const served = s.holder.model;
    assert.equal(served?.version, 1);

    const v2 = join(repo, 'm', '2');
    cpSync(join(repo, 'm', '1'), v2, { recursive: true });
    editInt32(v2, 'seen_offsets.npy', (o) => void (o[2] = -o[o.length - 1]));
    const m2 = JSON.parse(readFileSync(join(v2, 'manifest.json'), 'utf8'));
    writeFileSync(join(v2, 'manifest.json'), JSON.stringify({ ...m2, version: 2 }));
    const r = await s.app.inject({ method: 'POST', url: '/admin/reload', headers: auth });
    assert.equal(r.statusCode, 200);
    const body = r.json();
    assert.equal(body.changed, false);
    assert.equal(body.version, 1);
    assert.equal(body.refused.length, 1);
    assert.equal(body.refused[0].version, 2);
    assert.match(body.refused[0].reason, /^seen_offsets\.npy: offset 2 \(user 1\)/);
    assert.equal((await s.app.inject({ method: 'GET', url: '/readyz' })).json().model.version, 1);
    const rec = await s.app.inject({ method: 'GET', url: '/recommend?user=u2&k=5' });
    assert.equal(rec.statusCode, 200);
    assert.equal(rec.json().model_version, 1);

    // Folder 3 holds a copy of version 1, manifest unchanged: once refused, later polls leave it alone.
    cpSync(join(repo, 'm', '1'), join(repo, 'm', '3'), { recursive: true });
    const poll1 = await s.reloader.reload();
    assert.equal(poll1.changed, false);
    assert.deepEqual(poll1.refused.map((x) => x.version), [3]);
    assert.match(poll1.refused[0].reason, /^manifest\.json: version is 1 but the bundle is in folder 3/);
    const poll2 = await s.reloader.reload();
    assert.deepEqual(poll2, { changed: false, version: 1, refused: [] });
    assert.equal(s.holder.model, served, 'the served version (its caches, its state) stays in place');
    assert.match(await (await s.app.inject({ method: 'GET', url: '/metrics' })).body, /promptmm_model_load_failures_total 2\n/);
  } finally {
    await s.close();
  }
});

test('a server given only a bad bundle is not ready and answers 503 instead of hanging', async () => {
  const { repo, dir } = copyOfGood();
  editInt32(dir, 'seen_offsets.npy', (o) => void (o[2] = -o[o.length - 1]));
  const s = await testServer(repo, 'm');
  try {
    assert.equal(s.holder.model, null);
    assert.equal((await s.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
    const rec = await s.app.inject({ method: 'GET', url: '/recommend?user=u2&k=5' });
    assert.equal(rec.statusCode, 503);
    assert.match(rec.json().message, /no model version loaded/);
  } finally {
    await s.close();
  }
});
