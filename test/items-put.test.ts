/**
 * Issue 18, PUT /items: a new item is placed by the bundle's item_encoder.onnx (run by
 * onnxruntime in the server), served by both paths (ANN addPoint, the exact path's rows past its
 * ONNX table) and as a neighbor; interactions with it are accepted once it exists; bad features
 * are a 400 naming the field; it survives a restart (log replay, and with a snapshot); a PUT
 * during a reload lands in the version served after it; a bundle item keeps its trained vector.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBundle, type BundleInput } from '../export/exporter.js';
import { encodeReference, type ItemEncoderWeights } from '../repository/onnx-item-encoder-graph.js';
import { Rng } from '../core/rng.js';
import { HNSW, quietLog, smallBundle, testServer } from '../test-support/serving.js';
import { parseRecordJson } from '../repository/interaction-log.js';

const auth = { authorization: 'Bearer secret' };
const D = 16;
const MODS = [
  { name: 'image', dim: 6 },
  { name: 'text', dim: 4 },
];

function encoderWeights(seed = 5): ItemEncoderWeights {
  const rng = new Rng(seed);
  const inDim = MODS.reduce((s, m) => s + m.dim, 0);
  return {
    modalities: MODS.map((m) => ({ ...m })),
    mean: MODS.map((m) => new Float32Array(m.dim)),
    invStd: MODS.map((m) => new Float32Array(m.dim).fill(1)),
    layers: [{ inDim, outDim: D, w: Float32Array.from({ length: inDim * D }, () => rng.normal()), b: new Float32Array(D) }],
  };
}

function bundle(name: string, seed = 1): BundleInput & { weights: ItemEncoderWeights } {
  const weights = encoderWeights();
  return { ...smallBundle(name, seed), itemEncoder: { weights, design: 'ridge' }, weights };
}

const features = (scale: number, seed: number) => {
  const rng = new Rng(seed);
  return Object.fromEntries(MODS.map((m) => [m.name, Array.from({ length: m.dim }, () => scale * rng.normal())]));
};
const vectorOf = (w: ItemEncoderWeights, f: Record<string, number[]>) => encodeReference(w, MODS.map((m) => Float32Array.from(f[m.name])), 1);
const dot = (a: Float32Array, b: Float32Array, bOff = 0) => {
  let s = 0;
  for (let c = 0; c < D; c++) s += a[c] * b[bOff + c];
  return s;
};

type Srv = Awaited<ReturnType<typeof testServer>>;
const put = (s: Srv, id: string, body: unknown) => s.app.inject({ method: 'PUT', url: `/items/${encodeURIComponent(id)}`, headers: auth, payload: body as object });
const ids = (r: { json(): { items: { item: string }[] } }) => r.json().items.map((x) => x.item);

test('PUT /items: a new item from its features is served by ann and exact, as a neighbor, and takes interactions', async () => {
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-put-'));
  const input = bundle('put');
  exportBundle(input, { repo, hnsw: HNSW });
  const s = await testServer(repo, 'put', { online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const m0 = s.holder.model!;
    assert.ok(m0.embedder, 'the bundle has an item encoder');
    // before it exists: an interaction with it is rejected
    let r = await s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u3', item: 'sku-new' }] } });
    assert.equal(r.json().accepted, 0);

    const f = features(40, 1); // large: its vector dominates the users it points to
    r = await put(s, 'sku-new', { features: f, labels: ['fresh'] });
    assert.equal(r.statusCode, 200, r.body);
    const body = r.json();
    assert.equal(body.created, true);
    assert.equal(body.placed_from_features, true);
    assert.equal(body.row, 300);
    const want = vectorOf(input.weights, f);
    const m = s.holder.model!;
    for (let c = 0; c < D; c++) assert.ok(Math.abs(m.itemVectors[300 * D + c] - want[c]) < 1e-3 * Math.max(1, Math.abs(want[c])), `col ${c}`);

    const info = (await s.app.inject({ url: '/items/sku-new', headers: auth })).json();
    assert.deepEqual({ in_bundle: info.in_bundle, hidden: info.hidden, labels: info.labels, row: info.row }, { in_bundle: false, hidden: false, labels: ['fresh'], row: 300 });

    // a user it points toward gets it first on both paths; every answer equals brute force over 301 items
    const users = [...m.userIndex.entries()].map(([id, row]) => ({ id, row, s: dot(m.userVector(row), want) })).sort((a, b) => b.s - a.s);
    const u = users[0];
    const uv = m.userVector(u.row).slice();
    const brute = (k: number) =>
      Array.from({ length: 301 }, (_, i) => i)
        .filter((i) => !m.isSeen(u.row, i))
        .map((i) => ({ i, sc: dot(uv, m.itemVectors, i * D) }))
        .sort((a, b) => b.sc - a.sc || a.i - b.i)
        .slice(0, k)
        .map((x) => m.itemIds[x.i]);
    for (const retrieval of ['ann', 'exact']) {
      r = await s.app.inject({ url: `/recommend?user=${u.id}&k=10&retrieval=${retrieval}` });
      assert.equal(ids(r)[0], 'sku-new', retrieval);
      assert.deepEqual(ids(r), brute(10), retrieval);
      r = await s.app.inject({ url: `/recommend?user=${u.id}&k=10&retrieval=${retrieval}&labels=fresh` });
      assert.deepEqual(ids(r), ['sku-new']);
    }
    // neighbors of the new item, and the new item among a bundle item's neighbors' candidates
    r = await s.app.inject({ url: '/items/sku-new/neighbors?k=5&retrieval=exact' });
    assert.equal(r.statusCode, 200, r.body);
    const nb = Array.from({ length: 300 }, (_, i) => ({ i, sc: dot(want, m.itemVectors, i * D) })).sort((a, b) => b.sc - a.sc || a.i - b.i).slice(0, 5).map((x) => `i${x.i}`);
    assert.deepEqual(ids(r), nb);
    assert.deepEqual(ids(await s.app.inject({ url: '/items/sku-new/neighbors?k=5&retrieval=ann' })), nb);

    // interactions with it are accepted now
    r = await s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: u.id, item: 'sku-new' }] } });
    assert.equal(r.json().accepted, 1);
    assert.ok(m.isSeen(u.row, 300));
    assert.notEqual(ids(await s.app.inject({ url: `/recommend?user=${u.id}&k=10` }))[0], 'sku-new', 'seen now');

    // the exact path's table is rebuilt (a round's refresh folds the added row in), then the item is placed anew:
    // the table's copy of its vector is stale and must not decide the answer
    await m.replaceExact(() => true, quietLog);
    assert.equal(m.exact.nItems, 301);
    const fMid = features(40, 5);
    assert.equal((await put(s, 'sku-new', { features: fMid })).statusCode, 200);
    const uStale = [...m.userIndex.entries()].map(([id, row]) => ({ id, row, s: dot(m.userVector(row), vectorOf(input.weights, fMid)) })).sort((a, b) => b.s - a.s)[0];
    const exactTop = ids(await s.app.inject({ url: `/recommend?user=${uStale.id}&k=5&retrieval=exact` }));
    assert.equal(exactTop[0], 'sku-new', 'scored with its new vector, not the table\'s');
    assert.deepEqual(exactTop, ids(await s.app.inject({ url: `/recommend?user=${uStale.id}&k=5&retrieval=ann` })));

    // DELETE hides it; a PUT brings it back, placed from the new features
    await s.app.inject({ method: 'DELETE', url: '/items/sku-new', headers: auth });
    assert.ok(!ids(await s.app.inject({ url: `/recommend?user=${users[1].id}&k=300` })).includes('sku-new'));
    const f2 = features(40, 2);
    r = await put(s, 'sku-new', { features: f2 });
    assert.equal(r.json().created, false);
    assert.equal(s.holder.model!.catalog.hidden.has(300), false);
    assert.ok(m.ann.searchKnn(Array.from(vectorOf(input.weights, f2)), 5).neighbors.includes(300), 'back in the index (unmarked)');
    const want2 = vectorOf(input.weights, f2);
    assert.ok(Math.abs(m.itemVectors[300 * D] - want2[0]) < 1e-3 * Math.max(1, Math.abs(want2[0])), 'placed anew');
    assert.deepEqual((await s.app.inject({ url: '/items/sku-new', headers: auth })).json().labels, [], 'labels replaced');

    // a bundle item keeps its trained vector; its labels change
    const before = m.itemVectors.slice(7 * D, 8 * D);
    r = await put(s, 'i7', { features: features(1, 3), labels: ['sale'] });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual({ created: r.json().created, placed: r.json().placed_from_features }, { created: false, placed: false });
    assert.deepEqual(m.itemVectors.slice(7 * D, 8 * D), before);
    assert.deepEqual((await s.app.inject({ url: '/items/i7', headers: auth })).json().labels, ['sale']);

    // an item waiting for its vector is hidden but not deleted: a DELETE of it is logged
    const waiting = s.holder.model!.addItem('sku-waiting');
    s.holder.model!.catalog.placing(waiting);
    let info2 = (await s.app.inject({ url: '/items/sku-waiting', headers: auth })).json();
    assert.deepEqual({ hidden: info2.hidden, deleted: info2.deleted }, { hidden: true, deleted: false }, 'being placed');
    const del = (await s.app.inject({ method: 'DELETE', url: '/items/sku-waiting', headers: auth })).json();
    assert.equal(del.already_hidden, false);
    info2 = (await s.app.inject({ url: '/items/sku-waiting', headers: auth })).json();
    assert.equal(info2.deleted, true);
    s.holder.model!.catalog.placed(waiting);
    assert.ok(s.holder.model!.catalog.hidden.has(waiting), 'still deleted once placed');

    // many new items: the ANN index grows past its capacity
    for (let k = 0; k < 40; k++) assert.equal((await put(s, `bulk-${k}`, { features: features(1, 100 + k) })).statusCode, 200);
    assert.equal(s.holder.model!.nItems, 342);
    const a = await s.app.inject({ url: `/recommend?user=${users[5].id}&k=20&retrieval=ann` });
    const e = await s.app.inject({ url: `/recommend?user=${users[5].id}&k=20&retrieval=exact` });
    assert.deepEqual(ids(a), ids(e));
  } finally {
    await s.close();
  }
});

test('PUT /items: bad input is a 400 naming the field; a bundle without an encoder is a 409 for a new item', async () => {
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-put-bad-'));
  exportBundle(bundle('bad'), { repo, hnsw: HNSW });
  exportBundle({ ...smallBundle('plain') }, { repo, hnsw: HNSW });
  const s = await testServer(repo, 'bad', { online: { roundEvery: 0, roundSeconds: 0 } });
  const p = await testServer(repo, 'plain', { online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const ok = features(1, 1);
    const cases: [string, string, unknown, RegExp][] = [
      ['unknown modality', 'x', { features: { ...ok, audio: [1] } }, /features\.audio/],
      ['missing modality', 'x', { features: { image: ok.image } }, /features\.text/],
      ['wrong dimension', 'x', { features: { ...ok, text: [1, 2, 3] } }, /features\.text.*expected 4 values, got 3/],
      ['infinite value', 'x', `{"features":{"image":[1,2,3,4,5,1e999],"text":[1,2,3,4]}}`, /features\.image\.5/],
      ['string value', 'x', { features: { ...ok, text: [1, 'a', 3, 4] } }, /features\.text\/?\.?1|features.text.1/],
      ['prototype key', 'x', `{"features":{"__proto__":[1],"image":[1,2,3,4,5,6],"text":[1,2,3,4]}}`, /__proto__/],
      ['no features', 'x', { labels: ['a'] }, /features/],
      ['10,000 labels', 'x', { features: ok, labels: Array.from({ length: 10000 }, (_, i) => `l${i}`) }, /labels/],
      ['a label with a comma', 'x', { features: ok, labels: ['a,b'] }, /labels\.0/],
      ['an extra field', 'x', { features: ok, colour: 'red' }, /colour/],
      ['a 10 KB id', 'y'.repeat(10_000), { features: ok }, /id/],
    ];
    for (const [name, id, body, field] of cases) {
      const r = typeof body === 'string'
        ? await s.app.inject({ method: 'PUT', url: `/items/${id}`, headers: { ...auth, 'content-type': 'application/json' }, payload: body })
        : await put(s, id, body);
      assert.equal(r.statusCode, 400, `${name}: ${r.body}`);
      assert.match(r.body, field, name);
      assert.doesNotMatch(r.body, /at .*\.js:\d+/, `${name}: no stack trace`);
    }
    assert.equal(s.holder.model!.nItems, 300, 'nothing was added');
    assert.equal((await s.app.inject({ method: 'PUT', url: '/items/x', payload: { features: ok } })).statusCode, 401, 'the token is needed');
    const r = await put(p, 'sku', { features: ok });
    assert.equal(r.statusCode, 409);
    assert.match(r.json().message, /no item encoder/);
  } finally {
    await s.close();
    await p.close();
  }
});

test('PUT /items is durable: replayed after a restart, with and without a snapshot; a PUT during a reload lands in the version served after it', async () => {
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-put-durable-'));
  const input = bundle('dur');
  exportBundle(input, { repo, hnsw: HNSW });
  const f = features(40, 1);
  const want = vectorOf(input.weights, f);
  const check = (s: Srv, id: string, w: Float32Array, what: string) => {
    const m = s.holder.model!;
    const row = m.itemIndex.get(id);
    assert.ok(row !== undefined && row >= 300, `${what}: ${id} is an item`);
    for (let c = 0; c < D; c++) assert.ok(Math.abs(m.itemVectors[row * D + c] - w[c]) < 1e-3 * Math.max(1, Math.abs(w[c])), `${what}: col ${c}`);
    assert.equal(m.catalog.hidden.has(row), false, `${what}: served`);
    return row;
  };
  // no snapshots: the restart replays the log
  let s = await testServer(repo, 'dur', { online: { roundEvery: 0, roundSeconds: 0, snapshotEvery: 0, snapshotSeconds: 0 } });
  assert.equal((await put(s, 'sku-a', { features: f, labels: ['x'] })).statusCode, 200);
  await s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'new-user', item: 'sku-a' }] } });
  await s.close();
  s = await testServer(repo, 'dur', { online: { roundEvery: 0, roundSeconds: 0, snapshotEvery: 0, snapshotSeconds: 0 } });
  const rowA = check(s, 'sku-a', want, 'after a replay');
  const m1 = s.holder.model!;
  assert.ok(m1.isSeen(m1.userIndex.get('new-user')!, rowA), 'the interaction with it too');
  assert.deepEqual(m1.catalog.labels.get(rowA), ['x']);
  await s.close();

  // with a snapshot (written on close): its seen items point at the added row, re-created first from the log
  s = await testServer(repo, 'dur', { online: { roundEvery: 0, roundSeconds: 0, snapshotEvery: 1 } });
  const f2 = features(40, 9);
  assert.equal((await put(s, 'sku-b', { features: f2 })).statusCode, 200);
  await s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'other-user', item: 'sku-b' }] } });
  await s.online!.snapshotsSettled();
  await s.close();
  s = await testServer(repo, 'dur', { online: { roundEvery: 0, roundSeconds: 0, snapshotEvery: 1, replaySlice: 10 } });
  try {
    const snapPos = Number(/^promptmm_online_snapshot_position (\S+)$/m.exec((await s.app.inject({ url: '/metrics' })).body)?.[1]);
    assert.ok(snapPos > 0, 'the snapshot was loaded');
    check(s, 'sku-a', want, 'after a snapshot');
    const rowB = check(s, 'sku-b', vectorOf(input.weights, f2), 'after a snapshot');
    const m2 = s.holder.model!;
    assert.ok(m2.isSeen(m2.userIndex.get('other-user')!, rowB));

    // a PUT while version 2 is being brought up to date
    for (let k = 0; k < 300; k++) await s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: `u${1 + (k % 150)}`, item: `i${k}` }] } });
    exportBundle(bundle('dur', 2), { repo, hnsw: HNSW });
    let sent: Promise<unknown> | null = null;
    const f3 = features(40, 11);
    s.online!.onReplaySlice = (m) => {
      if (m.version === 2 && !sent) sent = put(s, 'sku-during', { features: f3 });
    };
    const r = await s.reloader.reload();
    assert.equal(r.version, 2);
    assert.ok(sent, 'the PUT was sent during the replay');
    assert.equal(((await sent) as { statusCode: number }).statusCode, 200);
    assert.equal(s.holder.model!.version, 2);
    check(s, 'sku-during', vectorOf(input.weights, f3), 'put during the reload');
    check(s, 'sku-a', want, 'version 2 replayed the earlier puts');
  } finally {
    await s.close();
  }
});

test('PUT /items on replicas sharing a Redis stream: every replica places the item, with the same vector', async () => {
  const { TestRedis } = await import('../test-support/redis.js');
  const redis = await TestRedis.start();
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-put-redis-'));
  const input = bundle('rep');
  exportBundle(input, { repo, hnsw: HNSW });
  const over = { sharedLog: redis.url('items'), follow: { blockMs: 200 } };
  const a = await testServer(repo, 'rep', over);
  const b = await testServer(repo, 'rep', over);
  try {
    const f = features(40, 4);
    const r = await put(a, 'sku-shared', { features: f, labels: ['z'] });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().row, 300);
    const end = Date.now() + 5000;
    while (b.holder.model!.appliedPosition < r.json().log_position && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
    const want = vectorOf(input.weights, f);
    for (const s of [a, b]) {
      const m = s.holder.model!;
      assert.equal(m.itemIndex.get('sku-shared'), 300);
      for (let c = 0; c < D; c++) assert.ok(Math.abs(m.itemVectors[300 * D + c] - want[c]) < 1e-3 * Math.max(1, Math.abs(want[c])), `col ${c}`);
      assert.deepEqual(m.catalog.labels.get(300), ['z']);
    }
    const w = await b.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u9', item: 'sku-shared' }] } });
    assert.equal(w.json().accepted, 1, 'B takes interactions with it');
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

test('records of a Redis stream written before records took the log\'s JSON still read', () => {
  assert.deepEqual(parseRecordJson('{"user":"u1","item":"i2","ts":5,"kind":"dislike"}'), { user: 'u1', item: 'i2', ts: 5, kind: 'dislike' });
  assert.deepEqual(parseRecordJson('{"user":"u1","item":"i2","ts":5}'), { user: 'u1', item: 'i2', ts: 5 });
  assert.equal(parseRecordJson('{"user":"u1","item":"i2","kind":"nope"}'), null);
  assert.equal(parseRecordJson('[1]'), null);
});

