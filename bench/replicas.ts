/**
 * `npm run bench:replicas`: replicas on one Redis stream (a redis-server of its own, AOF with
 * appendfsync always), on a synthetic bundle:
 *  1. the `mixed` load-test scenario with the local segment log vs with the Redis stream (same run);
 *  2. replication lag: a write on A → applied on B (B's /readyz `log.applied`), p50/p99, while A
 *     takes the `mixed` load;
 *  3. kill -9 of a replica while 4 clients write to A and B (N trials): acknowledged vs present in
 *     the stream vs applied on B and on a restarted A;
 *  4. kill -9 of redis-server while clients write (M trials): acknowledged vs present after restart;
 *  5. a replica started late catching up 100k entries.
 * Prints a table, writes bench/results/replicas-<date>.json.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { loadtest, type LoadtestOptions } from '../loadtest/run.js';
import { spawnServer, type SpawnedServer } from '../loadtest/spawn-server.js';
import { RedisStreamLog } from '../repository/redis-stream-log.js';
import { TestRedis } from '../test-support/redis.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const KILLS = Number(args.get('replica-kills') ?? 30);
const REDIS_KILLS = Number(args.get('redis-kills') ?? 10);
const DURATION = Number(args.get('duration') ?? 10);
const CATCH_UP = Number(args.get('catch-up') ?? 100_000);
const TOKEN = 'bench-token';
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const log = (s: string) => process.stderr.write(`[bench:replicas] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const repo = mkdtempSync(join(tmpdir(), 'bench-replicas-'));
const NAME = 'rep';
const USERS = 20_000;
const ITEMS = 10_000;
exportBundle(syntheticBundle({ name: NAME, users: USERS, items: ITEMS, dim: 64, seed: 3 }), { repo, hnsw: { space: 'ip', m: 16, efConstruction: 100, efSearch: 100, seed: 1 } });
const redis = await TestRedis.start();
const children: SpawnedServer[] = [];
process.on('exit', () => children.forEach((c) => c.child.kill('SIGKILL')));

function replica(stream: string): SpawnedServer {
  const s = spawnServer(['--name', NAME, '--repo', repo, '--port', '0', '--poll-seconds', '0', '--providers', 'cpu', '--log', redis.url(stream)], { PROMPTMM_TOKEN: TOKEN, PROMPTMM_LOG_LEVEL: 'info' });
  children.push(s);
  return s;
}
async function stopAll(): Promise<void> {
  for (const c of children.splice(0)) {
    if (c.child.exitCode === null && c.child.signalCode === null) {
      const gone = new Promise((r) => c.child.once('exit', r));
      c.child.kill('SIGKILL');
      await gone;
    }
  }
}
async function applied(base: string): Promise<number> {
  const r = (await (await fetch(`${base}/readyz`)).json()) as { log?: { applied: number } };
  return r.log?.applied ?? -1;
}
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
};
const user = (n: number) => `u${n % USERS}`;
const item = (n: number) => `i${(n * 7919) % ITEMS}`;

// 1. mixed: local log vs Redis stream
const lt = (serverArgs: string[]): LoadtestOptions => ({ scenarios: ['mixed'], connections: 50, duration: DURATION, warmup: 2, name: NAME, repo, token: TOKEN, out: mkdtempSync(join(tmpdir(), 'bench-replicas-lt-')), serverArgs, log });
const mixedLocal = (await loadtest(lt(['--providers', 'cpu']))).results;
const mixedRedis = (await loadtest(lt(['--providers', 'cpu', '--log', redis.url('mixed')]))).results;
const pick = (rs: typeof mixedLocal, s: string) => rs.find((r) => r.scenario === s)!;

// 2. replication lag under mixed load on A
log('replication lag: writes on A, applied on B, while A takes the mixed load');
const [a, b] = [replica('lag'), replica('lag')];
const [baseA, baseB] = [await a.url, await b.url];
const lagsMs: number[] = [];
const probe = (async () => {
  await sleep(1500);
  for (let n = 0; n < 400; n++) {
    const r = await fetch(`${baseA}/interactions`, { method: 'POST', headers: auth, body: JSON.stringify({ interactions: [{ user: user(n * 13), item: item(n) }] }) });
    if (r.status !== 200) continue;
    const p = ((await r.json()) as { log_position: number }).log_position;
    const acked = performance.now();
    while ((await applied(baseB)) < p) await sleep(1);
    lagsMs.push(performance.now() - acked);
    await sleep(10);
  }
})();
const underLoad = await loadtest({ ...lt([]), url: baseA });
await probe;
await stopAll();

// 3. kill -9 of a replica while 4 clients write to A and B
type Trial = { acked: number; inStream: number; appliedB: number; appliedRestartedA: number };
const replicaTrials: Trial[] = [];
for (let t = 0; t < KILLS; t++) {
  const stream = `kill-${t}`;
  log(`trial ${t + 1}: starting A and B`);
  const [ka, kb] = [replica(stream), replica(stream)];
  const [ua, ub] = [await ka.url, await kb.url];
  const acked: number[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const base = w % 2 ? ub : ua;
    for (let n = 0; !stop; n++) {
      try {
        const r = await fetch(`${base}/interactions`, { method: 'POST', headers: auth, body: JSON.stringify({ interactions: [{ user: user(w * 1000 + n), item: item(n) }] }) });
        if (r.status === 200) acked.push(((await r.json()) as { log_position: number }).log_position);
      } catch {
        if (base === ua) return;
      }
    }
  });
  await sleep(200 + ((t * 37) % 300)); // a different moment each trial
  ka.child.kill('SIGKILL');
  await sleep(100);
  stop = true;
  await Promise.all(writers);
  const l = await RedisStreamLog.open(redis.url(stream), { readOnly: true });
  const have = new Set((await l.read(0)).map((e) => e.position));
  await l.close();
  const top = Math.max(0, ...acked);
  log(`trial ${t + 1}: A killed, ${acked.length} acked, restarting A`);
  const restarted = replica(stream);
  const ur = await restarted.url;
  for (let i = 0; i < 400 && ((await applied(ub)) < top || (await applied(ur)) < top); i++) await sleep(25);
  const [apB, apR] = [await applied(ub), await applied(ur)];
  log(`trial ${t + 1}: stream holds ${have.size}, acked top ${top}; restarted A and B applied ${apR} / ${apB}`);
  replicaTrials.push({ acked: acked.length, inStream: acked.filter((p) => have.has(p)).length, appliedB: acked.filter((p) => p <= apB).length, appliedRestartedA: acked.filter((p) => p <= apR).length });
  log(`replica kill ${t + 1}/${KILLS}: ${JSON.stringify(replicaTrials.at(-1))}`);
  await stopAll();
}

// 4. kill -9 of redis-server while clients write
const redisTrials: { acked: number; recovered: number }[] = [];
for (let t = 0; t < REDIS_KILLS; t++) {
  const stream = `rkill-${t}`;
  const [ra, rb] = [replica(stream), replica(stream)];
  const [ua, ub] = [await ra.url, await rb.url];
  const acked: number[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let n = 0; !stop; n++) {
      try {
        const r = await fetch(`${w % 2 ? ub : ua}/interactions`, { method: 'POST', headers: auth, body: JSON.stringify({ interactions: [{ user: user(w * 1000 + n), item: item(n) }] }) });
        if (r.status === 200) acked.push(((await r.json()) as { log_position: number }).log_position);
        else await sleep(5);
      } catch {
        await sleep(5);
      }
    }
  });
  await sleep(200 + ((t * 53) % 300));
  await redis.kill9();
  await sleep(200);
  stop = true;
  await Promise.all(writers);
  await redis.restart();
  const l = await RedisStreamLog.open(redis.url(stream), { readOnly: true });
  const have = new Set((await l.read(0)).map((e) => e.position));
  await l.close();
  redisTrials.push({ acked: acked.length, recovered: acked.filter((p) => have.has(p)).length });
  log(`redis kill ${t + 1}/${REDIS_KILLS}: ${JSON.stringify(redisTrials.at(-1))}`);
  await stopAll();
}

// 5. a late replica catching up
log(`catch-up: ${CATCH_UP} entries in the stream, then a replica starts`);
const cl = await RedisStreamLog.open(redis.url('catch-up'));
for (let n = 0; n < CATCH_UP; n += 1000) await cl.append(Array.from({ length: Math.min(1000, CATCH_UP - n) }, (_, k) => ({ user: user(n + k), item: item(n + k), ts: n + k })));
await cl.close();
const t0 = performance.now();
const late = replica('catch-up');
const ul = await late.url;
while ((await applied(ul)) < CATCH_UP) await sleep(20);
const catchUpSeconds = (performance.now() - t0) / 1000;
const replayLine = /"replayed":(\d+).*?"seconds":([\d.]+)/.exec(late.stderr());
await stopAll();
await redis.stop();

const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
const result = {
  date: new Date().toISOString(),
  machine: { loadavg: loadavg(), note: 'two cores shared with other work; the load average is printed with each figure' },
  bundle: { users: USERS, items: ITEMS, dim: 64 },
  mixed: {
    local: { rps: pick(mixedLocal, 'mixed').rps, p99: pick(mixedLocal, 'mixed').latencyMs.p99, baselineRps: pick(mixedLocal, 'baseline').rps },
    redis: { rps: pick(mixedRedis, 'mixed').rps, p99: pick(mixedRedis, 'mixed').latencyMs.p99, baselineRps: pick(mixedRedis, 'baseline').rps },
  },
  replicationLagMs: { n: lagsMs.length, p50: q(lagsMs, 0.5), p99: q(lagsMs, 0.99), max: Math.max(...lagsMs), underLoadRps: pick(underLoad.results, 'mixed').rps },
  replicaKills: { trials: replicaTrials.length, acked: sum(replicaTrials.map((t) => t.acked)), inStream: sum(replicaTrials.map((t) => t.inStream)), appliedB: sum(replicaTrials.map((t) => t.appliedB)), appliedRestartedA: sum(replicaTrials.map((t) => t.appliedRestartedA)), perTrial: replicaTrials },
  redisKills: { trials: redisTrials.length, acked: sum(redisTrials.map((t) => t.acked)), recovered: sum(redisTrials.map((t) => t.recovered)), perTrial: redisTrials },
  catchUp: { entries: CATCH_UP, secondsToApplied: catchUpSeconds, replayLog: replayLine ? { replayed: Number(replayLine[1]), seconds: Number(replayLine[2]) } : null },
};
console.log(JSON.stringify({ ...result, replicaKills: { ...result.replicaKills, perTrial: undefined }, redisKills: { ...result.redisKills, perTrial: undefined } }, null, 2));
mkdirSync('bench/results', { recursive: true });
const out = join('bench/results', `replicas-${result.date.slice(0, 10)}.json`);
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
log(`wrote ${out}`);
process.exit(0);
