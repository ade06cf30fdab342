/** promptmm finetune on a shared stream: the round lease (expiry after kill -9) and published rounds. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFinetuneWorker } from '../cli/finetune.js';
import { RedisLease } from '../repository/redis-lease.js';
import { versionDir } from '../repository/versions.js';
import { TestRedis } from '../test-support/redis.js';
import { quietLog, repoWith, testServer } from '../test-support/serving.js';

let redis: TestRedis;
before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  await redis.stop();
});

test('the round lease: one holder; a holder killed with -9 loses it at expiry and another takes it', async () => {
  const url = redis.url('lease');
  const leaseJs = new URL('../repository/redis-lease.js', import.meta.url).href;
  // A separate process takes the lease, says so, and is killed without releasing it.
  const child = spawn(process.execPath, ['--input-type=module', '-e', `const { RedisLease } = await import(${JSON.stringify(leaseJs)}); const l = await RedisLease.open(${JSON.stringify(url)}, 1500); console.log(await l.tryAcquire()); setInterval(() => l.renew(), 500);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const took = await new Promise<string>((r) => child.stdout!.once('data', (d: Buffer) => r(d.toString().trim())));
  assert.equal(took, 'true');
  const b = await RedisLease.open(url, 1500);
  try {
    assert.equal(await b.tryAcquire(), false, 'held by the other process');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await b.tryAcquire(), false, 'still renewed while it lives');
    child.kill('SIGKILL');
    const t0 = Date.now();
    while (!(await b.tryAcquire())) {
      assert.ok(Date.now() - t0 < 5000, 'taken over within the lease time');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(Date.now() - t0 >= 400, 'not before the dead holder\'s lease ran out');
    assert.equal(await b.renew(), true);
    const c = await RedisLease.open(url, 1500);
    await c.release(); // not its lease: no effect
    assert.equal(await c.tryAcquire(), false);
    await c.close();
  } finally {
    await b.release();
    await b.close();
  }
});

test('finetune publishes a round as a new version with the stream position it absorbed; replicas load it and replay only the rest', async () => {
  const { repo } = repoWith('ft');
  const url = redis.url('ft');
  const a = await testServer(repo, 'ft', { sharedLog: url, follow: { blockMs: 200 } });
  try {
    const auth = { authorization: 'Bearer secret' };
    const batch = Array.from({ length: 60 }, (_, n) => ({ user: n % 5 ? `u${10 + (n % 30)}` : `online-${n}`, item: `i${(n * 7) % 300}` }));
    assert.equal((await a.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: batch } })).statusCode, 200);
    assert.equal((await a.app.inject({ method: 'DELETE', url: '/items/i123', headers: auth })).statusCode, 200);
    assert.equal((await a.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u17', item: 'i55', type: 'dislike' }] } })).statusCode, 200);
    const v1Items = a.holder.model!.itemVectors.slice();
    const r = await runFinetuneWorker({ name: 'ft', repo, log: url, providers: ['cpu'], roundEvery: 10, roundSeconds: 0, leaseSeconds: 5, once: true }, quietLog);
    assert.deepEqual(r.published, [2]);
    const manifest = JSON.parse(readFileSync(join(versionDir(repo, 'ft', 2), 'manifest.json'), 'utf8'));
    assert.equal(manifest.logPosition, 62);
    assert.equal(manifest.counts.users, 200 + 12, 'the users first seen in the stream are rows of the published version');
    await a.reloader.reload();
    const m = a.holder.model!;
    assert.equal(m.version, 2);
    assert.equal(m.appliedPosition, 62, 'nothing replayed twice');
    assert.ok(m.catalog.hidden.has(m.itemIndex.get('i123')!), 'the deleted item stays hidden in the published version');
    assert.ok(m.catalog.dislikesOf('u17')?.has(m.itemIndex.get('i55')!), 'and the dislike stays');
    assert.equal(m.extraSeen.size, 0, 'the stream\'s entries are the bundle\'s seen items now');
    assert.ok(m.isSeen(m.userIndex.get('online-0')!, 0));
    let moved = 0;
    for (let i = 0; i < v1Items.length; i++) if (v1Items[i] !== m.itemVectors[i]) moved++;
    assert.ok(moved > 0, 'the round moved item vectors');
    const after = await a.app.inject({ url: '/recommend?user=u17&k=10&retrieval=exact' });
    assert.equal(after.statusCode, 200);
    assert.ok(!after.json().items.some((x: { item: string }) => x.item === 'i49'), 'seen in the stream, not recommended');
  } finally {
    await a.close();
  }
});
