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

  const bad = join(root, 'badlog');
  const b = InteractionLog.open(bad);
  await b.append([{ user: 'alice', item: '1', ts: 0 }]);
  await b.close();
  r = cli('train', '--data', data, '--name', 'm2', '--repo', repo, '--student-only', '--interactions', bad, '--epochs', '1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /log position 1: user id "alice" is not a row number/);
});
