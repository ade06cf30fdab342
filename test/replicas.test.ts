/** Replicas sharing one interaction stream on a real redis-server: convergence, catch-up, outages. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RedisStreamLog } from '../repository/redis-stream-log.js';
import { Rng } from '../core/rng.js';
import { Redis } from 'ioredis';
import { TestRedis } from '../test-support/redis.js';
import { exportBundle } from '../export/exporter.js';
import { HNSW, repoWith, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
type Server = Awaited<ReturnType<typeof testServer>>;
type Answer = { cold_start: boolean; items: { item: string; score: number }[] };

async function rec(s: Server, user: string, retrieval = 'exact'): Promise<Answer> {
  const r = await s.app.inject({ method: 'GET', url: `/recommend?user=${encodeURIComponent(user)}&k=10&retrieval=${retrieval}` });
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as Answer;
}
const post = (s: Server, interactions: object[]) => s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions } });

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('replicas on one Redis stream', () => {
  let redis: TestRedis;
  const { repo } = repoWith('rep');
  const servers: Server[] = [];
  const replica = async (stream: string, over = {}) => {
    const s = await testServer(repo, 'rep', { sharedLog: redis.url(stream), follow: { blockMs: 200 }, ...over });
    servers.push(s);
    return s;
  };
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    for (const s of servers) await s.close().catch(() => undefined);
    await redis.stop();
  });

  it('a write on A shapes the user\'s next answer on B (seen item excluded, vector moved), in bounded time', async () => {
    const [a, b] = [await replica('ab'), await replica('ab')];
    const beforeB = await rec(b, 'u5');
    const top = beforeB.items[0].item;
    const r = await post(a, [{ user: 'u5', item: top }]);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().log_position, 1);
    assert.ok(!(await rec(a, 'u5')).items.some((x) => x.item === top), 'A: read-your-writes');
    const t0 = Date.now();
    await until('B applied the write', () => b.holder.model!.appliedPosition >= 1);
    const lagMs = Date.now() - t0;
    const afterB = await rec(b, 'u5');
    assert.ok(!afterB.items.some((x) => x.item === top), 'B excludes the item seen on A');
    assert.notDeepEqual(afterB.items.map((x) => x.score), beforeB.items.slice(1, 11).map((x) => x.score), 'B moved the user vector');
    assert.ok(lagMs < 5000);
    const ft = await a.app.inject({ method: 'POST', url: '/admin/finetune', headers: auth, payload: {} });
    assert.equal(ft.statusCode, 409, 'no local rounds on a replica');
    assert.match(ft.json().message, /promptmm finetune/);
  });

  it('once the stream is quiet, A and B answer identically for 200 random users', async () => {
    const [a, b] = [await replica('same'), await replica('same')];
    const rng = new Rng(7);
    // Writes to both, interleaved, new users included.
    const writes: Promise<unknown>[] = [];
    for (let n = 0; n < 120; n++) {
      const batch = Array.from({ length: 3 }, () => ({ user: rng.next() < 0.2 ? `new-${rng.int(20)}` : `u${rng.int(200)}`, item: `i${rng.int(300)}` }));
      writes.push(post(n % 2 ? a : b, batch));
    }
    const replies = await Promise.all(writes);
    for (const r of replies) assert.equal((r as { statusCode: number }).statusCode, 200);
    await until('both applied all 360', () => a.holder.model!.appliedPosition === 360 && b.holder.model!.appliedPosition === 360);
    const users = [...Array.from({ length: 180 }, () => `u${rng.int(200)}`), ...Array.from({ length: 20 }, (_, i) => `new-${i}`)];
    for (const u of users) {
      const [x, y] = [await rec(a, u), await rec(b, u)];
      assert.deepEqual(x, y, `user ${u}`);
    }
    for (const u of users.slice(0, 50)) assert.deepEqual(await rec(a, u, 'ann'), await rec(b, u, 'ann'), `user ${u} (ann)`);
  });

  it('a replica started late catches up from its bundle\'s position', async () => {
    const a = await replica('late');
    for (let n = 0; n < 20; n++) assert.equal((await post(a, Array.from({ length: 50 }, (_, k) => ({ user: `u${(n * 50 + k) % 200}`, item: `i${(n * 13 + k * 7) % 300}` })))).statusCode, 200);
    const late = await replica('late');
    assert.equal(late.holder.model!.appliedPosition, 1000, 'replayed before it served');
    for (const u of ['u1', 'u77', 'u150']) assert.deepEqual(await rec(late, u), await rec(a, u));
  });

  it('a replica that moved to a new version answers as one that started on it (negatives seeded by position)', async () => {
    const { repo: r2, input } = repoWith('rep2');
    const stream = redis.url('moved');
    const a = await testServer(r2, 'rep2', { sharedLog: stream, follow: { blockMs: 200 } });
    servers.push(a);
    for (let n = 0; n < 10; n++) assert.equal((await post(a, Array.from({ length: 20 }, (_, k) => ({ user: `u${(n * 20 + k) % 200}`, item: `i${(n * 31 + k * 3) % 300}` })))).statusCode, 200);
    exportBundle(input, { repo: r2, hnsw: HNSW }); // version 2, absorbed nothing of the stream
    await a.reloader.reload();
    assert.equal(a.holder.model!.version, 2);
    const c = await testServer(r2, 'rep2', { sharedLog: stream, follow: { blockMs: 200 } });
    servers.push(c);
    assert.equal(c.holder.model!.appliedPosition, 200);
    for (const u of ['u3', 'u42', 'u120', 'u199']) assert.deepEqual(await rec(c, u), await rec(a, u), u);
  });

  it('Redis down: reads answered from the last state, writes 503, /readyz degraded; back: reconnects and catches up', async () => {
    const [a, b] = [await replica('outage'), await replica('outage')];
    assert.equal((await post(a, [{ user: 'u9', item: 'i9' }])).statusCode, 200);
    await until('B applied', () => b.holder.model!.appliedPosition === 1);
    const answer = await rec(b, 'u9');
    await redis.kill9();
    assert.deepEqual(await rec(b, 'u9'), answer, 'reads still answered');
    const w = await post(a, [{ user: 'u9', item: 'i10' }]);
    assert.equal(w.statusCode, 503, w.body);
    assert.match(w.json().message, /shared interaction log is unavailable/);
    assert.doesNotMatch(w.body, /at .*\.js:\d+/, 'no stack trace');
    await until('B degraded', async () => (await b.app.inject({ url: '/readyz' })).json().status === 'degraded');
    const ready = (await b.app.inject({ url: '/readyz' })).json();
    assert.equal(ready.log.degraded, true);
    assert.match((await b.app.inject({ url: '/metrics' })).body, /promptmm_log_degraded 1/);
    await redis.restart();
    await until('A writes again', async () => (await post(a, [{ user: 'u9', item: 'i11' }])).statusCode === 200, 10_000);
    await until('B caught up', () => b.holder.model!.appliedPosition === 2, 10_000);
    await until('B ready', async () => (await b.app.inject({ url: '/readyz' })).json().status === 'ready', 10_000);
    assert.ok(!(await rec(b, 'u9')).items.some((x) => x.item === 'i11'));
    assert.match((await b.app.inject({ url: '/metrics' })).body, /promptmm_log_reconnects [1-9]/);
  });

  it('refuses to start with write endpoints on a stream whose server does not fsync every write', async () => {
    const volatile = await TestRedis.start({ durable: false });
    try {
      await assert.rejects(testServer(repo, 'rep', { sharedLog: volatile.url('v') }), /appendfsync|--allow-volatile-log/);
      const ro = await testServer(repo, 'rep', { sharedLog: volatile.url('v'), token: undefined });
      await ro.close();
      const forced = await testServer(repo, 'rep', { sharedLog: volatile.url('v'), allowVolatileLog: true });
      await forced.close();
    } finally {
      await volatile.stop();
    }
  });

  it('a start that fails after connecting closes its connections and stops following (no hang)', async () => {
    const probe = new Redis(redis.port, '127.0.0.1', { lazyConnect: true });
    await probe.connect();
    try {
      const clients = async () => String(await probe.client('LIST')).trim().split('\n').length;
      const alone = await clients();
      await assert.rejects(testServer(repo, 'rep', { sharedLog: redis.url('failing'), follow: { blockMs: 200 }, requestLimits: { sliceEntries: 0 } }), /sliceEntries must be a positive integer/);
      await until('the failed start\'s connections closed', async () => (await clients()) === alone);
    } finally {
      probe.disconnect();
    }
  });

  it('entries are kept until every version in the repository absorbed them', async () => {
    const l = await RedisStreamLog.open(redis.url('trimmed'));
    await l.append([{ user: 'u1', item: 'i1', ts: 0 }]);
    const a = await replica('trimmed');
    assert.equal(a.holder.model!.appliedPosition, 1);
    assert.equal(await l.length(), 1, 'the bundles absorbed nothing of the stream: nothing trimmed');
    await l.close();
  });
});
