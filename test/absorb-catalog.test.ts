/**
 * Issue 18, string ids end to end and the nightly retrain: a dataset whose ids are hashes, a log
 * with new users, items added by PUT /items (features, labels), dislikes, deletes and a record of
 * an unknown item: merged without failing, trained, exported and served by those ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InteractionLog } from '../repository/interaction-log.js';
import { mergeInteractionLog } from '../data/absorb-log.js';
import { loadDataset } from '../data/dataset.js';
import { hashedDataset } from '../test-support/hashed-data.js';
import { runCli } from '../test-support/cli.js';
import { testServer } from '../test-support/serving.js';

const root = mkdtempSync(join(tmpdir(), 'absorb-catalog-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

test('a hash-id dataset absorbs new users, put items, dislikes and deletes; trains, exports and serves by its ids', async () => {
  const { dir, rows, items } = hashedDataset(join(root, 'data'), 40, 24, 3, 4);
  const users = [...new Set(rows.map((r) => r[0]))];
  const logDir = join(root, 'log');
  const log = InteractionLog.open(logDir);
  const fresh = Float32Array.from([1, 2, 3, 4]);
  await log.append([
    { user: users[0], item: items[1], ts: 1 },
    { user: 'new user λ', item: items[2], ts: 2 },
    { user: '', item: 'sku-new', ts: 3, kind: 'item_put', features: { image: fresh }, labels: ['fresh', 'sale'] },
    { user: users[1], item: 'sku-new', ts: 4 },
    { user: users[2], item: items[3], ts: 5, kind: 'dislike' },
    { user: '', item: items[4], ts: 6, kind: 'item_delete' },
    { user: users[3], item: 'ghost', ts: 7 },
    { user: '', item: 'sku-bad', ts: 8, kind: 'item_put', features: { image: new Float32Array(3) } },
  ]);
  await log.close();
  // old records (no kind) and new ones read back alike
  const back = InteractionLog.open(logDir, { readOnly: true }).read(0);
  assert.deepEqual(Array.from(back[2].features!.image), [1, 2, 3, 4]);
  assert.equal(back[0].kind, undefined);
  assert.equal(back[4].kind, 'dislike');

  const out = join(root, 'merged');
  const a = mergeInteractionLog(dir, logDir, out);
  assert.deepEqual({ interactions: a.interactions, newUsers: a.newUsers, newItems: a.newItems, unknownItems: a.unknownItems, dislikes: a.dislikes, deletedItems: a.deletedItems, featureMismatches: a.featureMismatches, logPosition: a.logPosition }, {
    interactions: 3, newUsers: 1, newItems: 2, unknownItems: 1, dislikes: 1, deletedItems: [items[4]], featureMismatches: 1, logPosition: 8,
  });
  const m = loadDataset(out);
  assert.deepEqual(m.ids!.users.slice(0, users.length), users, 'the hash users keep their rows');
  assert.equal(m.ids!.users.at(-1), 'new user λ');
  assert.deepEqual(m.ids!.items, [...items, 'sku-new', 'sku-bad']);
  const image = m.modalities.find((x) => x.name === 'image')!;
  const newRow = items.length;
  assert.deepEqual(Array.from(image.data.subarray(newRow * 4, newRow * 4 + 4)), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(image.data.subarray((newRow + 1) * 4, (newRow + 2) * 4)), [0, 0, 0, 0], 'features that do not fit: zeros');
  assert.deepEqual(m.itemLabels?.get(newRow), ['fresh', 'sale']);
  // the new item's interaction is a train row of the merged data
  const u1 = m.ids!.users.indexOf(users[1]);
  assert.ok(Array.from(m.trainByUser.indices.subarray(m.trainByUser.indptr[u1], m.trainByUser.indptr[u1 + 1])).includes(newRow));
  // the original splits are intact
  assert.equal(m.test.users.length, rows.filter((r) => r[2] === 2).length);

  // through the CLI: train --interactions, export, serve by hash ids
  const repo = join(root, 'models');
  let r = runCli('train', '--data', dir, '--name', 'h', '--repo', repo, '--student-only', '--interactions', logDir, '--epochs', '1', '--eval-every', '100', '--dim', '8');
  assert.equal(r.code, 0, r.stderr);
  r = runCli('export', '--name', 'h', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const bundle = JSON.parse(r.stdout).dir;
  const ids = JSON.parse(readFileSync(join(bundle, 'ids.json'), 'utf8'));
  assert.deepEqual(ids.items, [...items, 'sku-new', 'sku-bad']);
  assert.ok(existsSync(join(bundle, 'item_labels.json')), 'the put item\'s labels reach the bundle');
  const s = await testServer(repo, 'h', { logDir: join(root, 'serve-log'), online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const g = await s.app.inject({ method: 'GET', url: `/recommend?user=${encodeURIComponent(users[1])}&k=5&labels=fresh&exclude_seen=false` });
    assert.equal(g.statusCode, 200, g.body);
    assert.equal(g.json().cold_start, false);
    assert.deepEqual(g.json().items.map((x: { item: string }) => x.item), ['sku-new']);
    const n = await s.app.inject({ method: 'GET', url: `/recommend?user=${encodeURIComponent('new user λ')}&k=5` });
    assert.equal(n.json().cold_start, false, 'the user first seen in the log is a user of the retrained model');
    // The bundle's position is past the delete and the dislike: the bundle itself keeps them (catalog_state.json).
    assert.ok(existsSync(join(bundle, 'catalog_state.json')));
    const m2 = s.holder.model!;
    assert.ok(m2.catalog.hidden.has(m2.itemIndex.get(items[4])!), 'the deleted item stays hidden after the retrain');
    assert.ok(m2.catalog.dislikesOf(users[2])?.has(m2.itemIndex.get(items[3])!), 'the dislike survives the retrain');
    const all = await s.app.inject({ method: 'GET', url: `/recommend?user=${encodeURIComponent(users[2])}&k=1000&exclude_seen=false` });
    const got = all.json().items.map((x: { item: string }) => x.item);
    assert.ok(!got.includes(items[4]) && !got.includes(items[3]), 'neither comes back');
  } finally {
    await s.close();
  }
});
