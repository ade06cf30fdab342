/** Nightly retrain: the log merges into the training data, the bundle records the absorbed position, the server replays only the rest. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InteractionLog } from '../repository/interaction-log.js';
import { runCli } from '../test-support/cli.js';
import { testServer } from '../test-support/serving.js';

const root = mkdtempSync(join(tmpdir(), 'retrain-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const cli = runCli;

test('train --interactions absorbs the log; export records the position; the server replays only newer records', async () => {
  const data = join(root, 'data');
  const repo = join(root, 'models');
  const logDir = join(root, 'log');
  assert.equal(cli('generate', '--out', data, '--users', '150', '--items', '100', '--seed', '2').code, 0);
  const log = InteractionLog.open(logDir);
  await log.append([{ user: '3', item: '7', ts: 1 }, { user: '3', item: '8', ts: 2 }, { user: '150', item: '9', ts: 3 }]);
  await log.close();

  let r = cli('train', '--data', data, '--name', 'n', '--repo', repo, '--student-only', '--interactions', logDir, '--epochs', '2', '--eval-every', '100', '--dim', '8');
  assert.equal(r.code, 0, r.stderr);
  r = cli('export', '--name', 'n', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const manifest = JSON.parse(readFileSync(join(JSON.parse(r.stdout).dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.logPosition, 3);
  assert.equal(manifest.counts.users, 151, 'user 150 first seen in the log is a user of the retrained model');

  const again = InteractionLog.open(logDir);
  await again.append([{ user: '3', item: '11', ts: 4 }, { user: '4', item: '12', ts: 5 }]);
  await again.close();
  const s = await testServer(repo, 'n', { logDir, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const m = s.holder.model!;
    assert.equal(m.appliedPosition, 5);
    // absorbed records are part of the bundle's seen items; only the two newer ones were replayed on top
    const row3 = m.userIndex.get('3')!;
    assert.ok(m.isSeen(row3, 7) && m.isSeen(row3, 8) && m.isSeen(row3, 11));
    assert.deepEqual([...(m.extraSeen.get(row3) ?? [])], [11]);
    assert.deepEqual([...(m.extraSeen.get(m.userIndex.get('4')!) ?? [])], [12]);
    assert.equal(m.extraSeen.size, 2);
  } finally {
    await s.close();
  }

  // Ids the server accepts but the MMRec layout has no row for (issue 17): new rows, named in ids.json.
  const odd = join(root, 'oddlog');
  const b = InteractionLog.open(odd);
  await b.append([{ user: 'alice', item: '1', ts: 0 }, { user: '999999999', item: '2', ts: 1 }, { user: 'alice', item: '3', ts: 2 }, { user: '007', item: '4', ts: 3 }, { user: '5', item: 'no-such-item', ts: 4 }]);
  await b.close();
  r = cli('train', '--data', data, '--name', 'm2', '--repo', repo, '--student-only', '--interactions', odd, '--epochs', '1', '--eval-every', '100', '--dim', '8');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /not absorbed/, 'the record of an unknown item is reported, not fatal');
  r = cli('export', '--name', 'm2', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const dir = JSON.parse(r.stdout).dir;
  const m2 = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  assert.equal(m2.counts.users, 153, '150 dataset users + alice, 999999999 and 007');
  assert.equal(m2.logPosition, 5);
  const ids = JSON.parse(readFileSync(join(dir, 'ids.json'), 'utf8'));
  assert.deepEqual(ids.users.slice(148), ['148', '149', 'alice', '999999999', '007']);
  assert.equal(ids.users[7], '7', "'007' is not user 7");
  const s2 = await testServer(repo, 'm2', { logDir: odd, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const alice = await s2.app.inject({ method: 'GET', url: '/recommend?user=alice&k=5' });
    assert.equal(alice.statusCode, 200);
    assert.equal(alice.json().cold_start, false, 'alice is a user of the retrained model');
    assert.ok(!alice.json().items.some((x: { item: string }) => x.item === '1' || x.item === '3'), "alice's absorbed items are seen");
  } finally {
    await s2.close();
  }
});
