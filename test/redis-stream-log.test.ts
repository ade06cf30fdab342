import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseRedisLogUrl, RedisLogConfigError, RedisStreamLog } from '../repository/redis-stream-log.js';
import { TestRedis } from '../test-support/redis.js';

describe('redis log address', () => {
  it('reads host, port, db and stream', () => {
    const a = parseRedisLogUrl('redis://10.0.0.5:6380/3?stream=shop:events');
    assert.deepEqual([a.host, a.port, a.db, a.stream, a.counter], ['10.0.0.5', 6380, 3, 'shop:events', 'shop:events:position']);
    assert.equal(parseRedisLogUrl('redis://localhost').port, 6379);
  });
  it('names what is wrong', () => {
    assert.throws(() => parseRedisLogUrl('http://x:1/0'), /scheme must be redis/);
    assert.throws(() => parseRedisLogUrl('redis://x:1/abc'), /database "abc"/);
    assert.throws(() => parseRedisLogUrl('redis://x:1/0?stream=a b'), /stream name/);
    assert.throws(() => parseRedisLogUrl('redis://x:1/0?strem=a'), /unknown parameter "strem"/);
    assert.throws(() => parseRedisLogUrl('not a url'), RedisLogConfigError);
  });
});

describe('redis stream log (real redis-server)', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.stop();
  });

  it('gives dense, monotonic positions to concurrent writers on two connections', async () => {
    const url = redis.url('dense');
    const [a, b] = [await RedisStreamLog.open(url), await RedisStreamLog.open(url)];
    const acks = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).append([{ user: `u${i}`, item: `i${i}`, ts: i }, { user: `u${i}`, item: `j${i}`, ts: i }])),
    );
    const all = await a.read(0);
    assert.equal(all.length, 80);
    assert.deepEqual(all.map((e) => e.position), Array.from({ length: 80 }, (_, i) => i + 1));
    // Each ack is the position of its own last entry, and the pair is consecutive.
    for (let i = 0; i < 40; i++) {
      const p = acks[i];
      assert.deepEqual([all[p - 2].item, all[p - 1].item], [`i${i}`, `j${i}`]);
    }
    assert.equal(await a.head(), 80);
    assert.deepEqual((await b.read(78)).map((e) => e.position), [79, 80]);
    assert.equal((await b.read(10, 5)).length, 5);
    await a.close();
    await b.close();
  });

  it('carries every field of a record unchanged, float32 features included (the segment log\'s JSON)', async () => {
    const l = await RedisStreamLog.open(redis.url('fields'));
    const e = { user: 'ü-😀', item: 'SKU "1"', ts: 1_700_000_000_000, kind: 'dislike' as const };
    const p = { user: '', item: 'sku-2', ts: 1, kind: 'item_put' as const, features: { image: Float32Array.from([0.1, -2.5, 3e-8]) }, labels: ['a b', 'c'] };
    await l.append([e, p]);
    const got = await l.read(0);
    assert.deepEqual(got[0], { ...e, position: 1 });
    assert.ok(got[1].features!.image instanceof Float32Array);
    assert.deepEqual({ ...got[1], features: { image: [...got[1].features!.image] } }, { ...p, features: { image: [...p.features.image] }, position: 2 });
    await l.close();
  });

  it('waitRead wakes on another replica\'s write', async () => {
    const url = redis.url('follow');
    const [a, b] = [await RedisStreamLog.open(url), await RedisStreamLog.open(url)];
    const got = b.waitRead(0, 5000);
    await new Promise((r) => setTimeout(r, 50));
    await a.append([{ user: 'x', item: 'y', ts: 1 }]);
    const es = await got;
    assert.deepEqual(es.map((e) => [e.position, e.user]), [[1, 'x']]);
    assert.deepEqual(await b.waitRead(1, 100), [], 'nothing newer: returns empty after the block time');
    await a.close();
    await b.close();
  });

  it('trims only what was absorbed', async () => {
    const l = await RedisStreamLog.open(redis.url('trim'));
    await l.append(Array.from({ length: 10 }, (_, i) => ({ user: 'u', item: String(i), ts: i })));
    await l.trim(6);
    assert.deepEqual((await l.read(0)).map((e) => e.position), [7, 8, 9, 10]);
    assert.equal(await l.length(), 4);
    assert.equal(await l.append([{ user: 'u', item: 'z', ts: 0 }]), 11, 'positions go on after a trim');
    await l.close();
  });

  it('keeps every acknowledged entry across kill -9 of redis-server', async () => {
    const url = redis.url('crash');
    const l = await RedisStreamLog.open(url);
    const acked: number[] = [];
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; ; i++) {
        try {
          acked.push(await l.append([{ user: `w${w}`, item: String(i), ts: i }]));
        } catch {
          return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 150));
    await redis.kill9();
    await Promise.all(writers);
    assert.ok(acked.length > 10, `some writes were acknowledged before the kill (${acked.length})`);
    await redis.restart();
    await l.close();
    const after = await RedisStreamLog.open(url);
    const have = new Set((await after.read(0)).map((e) => e.position));
    const lost = acked.filter((p) => !have.has(p));
    assert.deepEqual(lost, [], 'no acknowledged entry lost');
    await after.close();
  });

  it('fails an append at once while the server is down, and works again after it is back', async () => {
    const l = await RedisStreamLog.open(redis.url('down'));
    await l.append([{ user: 'a', item: 'b', ts: 0 }]);
    await redis.kill9();
    const t0 = Date.now();
    await assert.rejects(l.append([{ user: 'a', item: 'c', ts: 0 }]), /append failed/);
    assert.ok(Date.now() - t0 < 5000, 'no hang');
    for (let i = 0; i < 40 && l.connected; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(l.connected, false, 'the log knows it is disconnected');
    await redis.restart();
    for (let i = 0; i < 100 && !l.connected; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(l.connected, true, 'reconnected with backoff');
    assert.ok(l.reconnects >= 1);
    assert.equal(await l.append([{ user: 'a', item: 'd', ts: 0 }]), 2);
    await l.close();
  });
});

describe('redis stream log on a volatile server', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start({ durable: false });
  });
  after(async () => {
    await redis.stop();
  });

  it('refuses to open for writing unless allowVolatile, and says why', async () => {
    await assert.rejects(RedisStreamLog.open(redis.url()), /appendonly no.*--allow-volatile-log/s);
    const l = await RedisStreamLog.open(redis.url(), { allowVolatile: true });
    assert.equal(l.durability.durable, false);
    await l.close();
    const r = await RedisStreamLog.open(redis.url(), { readOnly: true });
    await assert.rejects(r.append([{ user: 'a', item: 'b', ts: 0 }]), /read-only/);
    await r.close();
  });

  it('says the server cannot be reached, naming it', async () => {
    await assert.rejects(RedisStreamLog.open('redis://127.0.0.1:1/0?stream=x', { connectTimeoutMs: 500 }), /cannot reach the log at redis:\/\/127\.0\.0\.1:1\/0/);
  });
});
