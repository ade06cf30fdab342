/** The nightly retrain on a shared Redis stream: absorbs it, records the position, trimming keeps what a version lacks. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStreamLog } from '../repository/redis-stream-log.js';
import { runCli as cli } from '../test-support/cli.js';
import { TestRedis } from '../test-support/redis.js';
import { testServer } from '../test-support/serving.js';

const root = mkdtempSync(join(tmpdir(), 'retrain-stream-'));
let redis: TestRedis;
before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  await redis.stop();
  rmSync(root, { recursive: true, force: true });
});

const train = (data: string, name: string, repo: string, url: string) =>
  cli('train', '--data', data, '--name', name, '--repo', repo, '--student-only', '--interactions', url, '--epochs', '1', '--eval-every', '100', '--dim', '8');

test('train --interactions redis://… absorbs the stream; replicas replay the rest; a trim removes only what every version absorbed', async () => {
  const data = join(root, 'data');
  const repo = join(root, 'models');
  const url = redis.url('nightly');
  assert.equal(cli('generate', '--out', data, '--users', '150', '--items', '100', '--seed', '2').code, 0);
  const stream = await RedisStreamLog.open(url);
  await stream.append([{ user: '3', item: '7', ts: 1 }, { user: '3', item: '8', ts: 2 }, { user: 'alice', item: '9', ts: 3 }]);

  let r = train(data, 'n', repo, url);
  assert.equal(r.code, 0, r.stderr);
  r = cli('export', '--name', 'n', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const manifest = JSON.parse(readFileSync(join(JSON.parse(r.stdout).dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.logPosition, 3);
  assert.equal(manifest.counts.users, 151, '"alice", first seen in the stream, is a user of the retrained model');

  await stream.append([{ user: '3', item: '11', ts: 4 }, { user: '4', item: '12', ts: 5 }]);
  const s = await testServer(repo, 'n', { sharedLog: url, follow: { blockMs: 200 } });
  try {
    const m = s.holder.model!;
    assert.equal(m.appliedPosition, 5);
    assert.deepEqual([...(m.extraSeen.get(m.userIndex.get('3')!) ?? [])], [11], 'only the entries after the bundle\'s position were replayed');
    // The only version absorbed 3: the swap trimmed positions 1–3 and kept 4–5.
    assert.deepEqual((await stream.read(0)).map((e) => e.position), [4, 5]);
  } finally {
    await s.close();
  }

  // The next night: the original data lacks the trimmed entries, so the merge refuses it …
  r = train(data, 'n2', repo, url);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no longer holds positions 1–3.*data-with-log/s);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'a message, not a stack trace');
  // … and last night's merged data (which absorbed 1–3) takes the rest.
  const prev = join(root, 'absorbed-3');
  cpSync(join(repo, 'n', 'data-with-log'), prev, { recursive: true, verbatimSymlinks: true });
  r = train(prev, 'n2', repo, url);
  assert.equal(r.code, 0, r.stderr);
  r = cli('export', '--name', 'n2', '--repo', repo, '--hnsw-m', '8');
  assert.equal(r.code, 0, r.stderr);
  const m2 = JSON.parse(readFileSync(join(JSON.parse(r.stdout).dir, 'manifest.json'), 'utf8'));
  assert.equal(m2.logPosition, 5);
  await stream.close();
});
