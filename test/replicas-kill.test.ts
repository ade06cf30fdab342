/** Replica processes on one Redis stream: kill -9 of a replica while clients write to both loses nothing acknowledged. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisStreamLog } from '../repository/redis-stream-log.js';
import { spawnServer, type SpawnedServer } from '../loadtest/spawn-server.js';
import { TestRedis } from '../test-support/redis.js';
import { repoWith } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret', 'content-type': 'application/json' };
let redis: TestRedis;
const started: SpawnedServer[] = [];
before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  for (const s of started) s.child.kill('SIGKILL');
  await redis.stop();
});

test('kill -9 of replica A while 4 clients write to A and B: every acknowledged entry is in the stream and applied on B and on a restarted A', async () => {
  const { repo } = repoWith('k');
  const url = redis.url('kill');
  const start = () => {
    const s = spawnServer(['--name', 'k', '--repo', repo, '--port', '0', '--log', url, '--providers', 'cpu'], { PROMPTMM_TOKEN: 'secret' });
    started.push(s);
    return s;
  };
  const a = start();
  const b = start();
  const [baseA, baseB] = [await a.url, await b.url];
  const acked: { user: string; item: string; position: number }[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const base = w % 2 ? baseB : baseA;
    for (let n = 0; !stop; n++) {
      const x = { user: `u${1 + ((w * 50 + n) % 199)}`, item: `i${(w * 97 + n * 13) % 300}` };
      try {
        const r = await fetch(`${base}/interactions`, { method: 'POST', headers: auth, body: JSON.stringify({ interactions: [x] }) });
        if (r.status === 200) acked.push({ ...x, position: ((await r.json()) as { log_position: number }).log_position });
      } catch {
        if (base === baseA) return; // A died under us: that request was never acknowledged
      }
    }
  });
  await new Promise((r) => setTimeout(r, 600));
  a.child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 300)); // B's writers go on after A's death
  stop = true;
  await Promise.all(writers);
  assert.ok(acked.length > 10, `${acked.length} acknowledged`);

  const stream = await RedisStreamLog.open(url, { readOnly: true });
  const inStream = new Map((await stream.read(0)).map((e) => [e.position, e]));
  await stream.close();
  for (const x of acked) {
    const e = inStream.get(x.position);
    assert.ok(e && e.user === x.user && e.item === x.item, `acknowledged ${x.user}/${x.item} at ${x.position} is in the stream`);
  }

  const a2 = start();
  const baseA2 = await a2.url;
  const head = Math.max(...inStream.keys());
  for (const base of [baseB, baseA2]) {
    for (let i = 0; ; i++) {
      const ready = (await (await fetch(`${base}/readyz`)).json()) as { log?: { lag: number } };
      if (ready.log?.lag === 0) break;
      assert.ok(i < 200, `${base} caught up with the stream`);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const x of acked) {
      const r = await fetch(`${base}/recommend?user=${x.user}&k=1000&retrieval=exact`);
      const items = ((await r.json()) as { items: { item: string }[] }).items.map((i) => i.item);
      assert.ok(!items.includes(x.item), `${base}: ${x.user}/${x.item} (position ${x.position} of ${head}) is applied`);
    }
  }
  b.child.kill('SIGTERM');
  a2.child.kill('SIGTERM');
});
