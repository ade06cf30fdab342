/** SIGTERM on a real `promptmm serve` with requests in flight: every one received is answered whole, and a drain that times out exits 1. */
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnServer } from '../loadtest/spawn-server.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { rawConnect, rawRequest, type RawResponse } from '../test-support/raw-http.js';
import { repoWith } from '../test-support/serving.js';

const USERS = 200;
const K = 250;

/** A whole answer: 200 with the expected number of lists and items, or a clean 503 that closes the connection. */
function whole(r: RawResponse | undefined, lists: number | null): string | null {
  if (!r) return 'no answer';
  if (!r.complete) return `truncated (${r.status}, ${r.body.length} bytes)`;
  if (r.status === 503) return r.headers.connection === 'close' ? null : '503 without Connection: close';
  if (r.status !== 200) return `status ${r.status}`;
  const j = JSON.parse(r.body.toString('utf8'));
  const ok = lists === null ? j.items?.length === K : j.results?.length === lists && j.results.every((x: { items: unknown[] }) => x.items.length === K);
  return ok ? null : 'wrong length';
}

test('SIGTERM with heavy, pipelined, keep-alive and write requests in flight: every one is answered whole, each acknowledged write is in the log, exit 0', async () => {
  const { repo } = repoWith('d');
  // batches beyond the default cost limit, so that the drain has long answers to finish
  const server = spawnServer(['--name', 'd', '--repo', repo, '--port', '0', '--poll-seconds', '0', '--retrieval', 'exact', '--max-batch-entries', '256000', '--max-batch-entries-in-flight', '4096000'], { PROMPTMM_TOKEN: 'secret' });
  const port = Number(new URL(await server.url).port);
  const exited = new Promise<number | null>((r) => server.child.on('exit', (code) => r(code)));
  const users = (j: number) => Array.from({ length: USERS }, (_, i) => `u${(i + j * 17) % 200}`);

  // Keep-alive connections that already had an answer; their next request goes out with the signal.
  const idle = await Promise.all(Array.from({ length: 3 }, () => rawConnect(port)));
  for (const [i, c] of idle.entries()) {
    c.socket.write(rawRequest('GET', `/recommend?user=u${i + 1}&k=5`));
    assert.equal((await c.responsesAt(1))[0].status, 200);
  }
  // Heavy batches (~2 MB answers each), one connection each (enough that some still wait in the
  // accept queue when the signal comes), and three requests pipelined on one connection.
  const heavy = await Promise.all(Array.from({ length: 16 }, () => rawConnect(port)));
  heavy.forEach((c, j) => c.socket.write(rawRequest('POST', '/recommend', JSON.stringify({ users: users(j), k: K }))));
  const pipe = await rawConnect(port);
  pipe.socket.write([1, 2, 3].map((i) => rawRequest('GET', `/recommend?user=u${i + 10}&k=${K}`)).join(''));
  // Once the server is busy answering, the keep-alive requests and the signal go out together.
  await Promise.race(heavy.map((c) => c.firstData));
  idle.forEach((c, i) => c.socket.write(rawRequest('GET', `/recommend?user=u${i + 20}&k=${K}`)));
  const writes = await Promise.all(Array.from({ length: 4 }, () => rawConnect(port)));
  writes.forEach((c, i) => c.socket.write(rawRequest('POST', '/interactions', JSON.stringify({ interactions: [{ user: `w${i}`, item: `i${i + 1}` }] }), { authorization: 'Bearer secret' })));
  server.child.kill('SIGTERM');

  const problems: string[] = [];
  for (const [j, c] of heavy.entries()) {
    const o = await c.done;
    const p = whole(o.responses[0], USERS);
    if (p) problems.push(`batch ${j}: ${p} (${o.end})`);
  }
  const po = await pipe.done;
  for (let i = 0; i < 3; i++) {
    const p = whole(po.responses[i], null);
    if (p) problems.push(`pipelined ${i}: ${p} (${po.end})`);
    if (po.responses[i]?.status === 503) break; // the connection closes after a 503; the rest go elsewhere
  }
  for (const [i, c] of idle.entries()) {
    const o = await c.done;
    const p = whole(o.responses[1], null);
    if (p) problems.push(`keep-alive ${i}: ${p} (${o.end})`);
  }
  const acknowledged: { position: number; user: string; item: string }[] = [];
  for (const [i, c] of writes.entries()) {
    const r = (await c.done).responses[0];
    if (r?.status === 200 && r.complete) acknowledged.push({ position: JSON.parse(r.body.toString('utf8')).log_position, user: `w${i}`, item: `i${i + 1}` });
    else if (!(r?.status === 503 && r.complete && r.headers.connection === 'close')) problems.push(`write ${i}: ${r ? `status ${r.status}, complete ${r.complete}` : 'no answer'}`);
  }
  const code = await exited;
  assert.deepEqual(problems, [], server.stderr().slice(-3000));
  assert.equal(code, 0, server.stderr().slice(-3000));
  assert.match(server.stderr(), /shut down cleanly/);
  assert.ok(acknowledged.length > 0, 'some writes were acknowledged');
  const log = InteractionLog.open(join(repo, 'd', 'interactions'), { readOnly: true });
  const logged = log.read();
  await log.close();
  for (const a of acknowledged) assert.ok(logged.some((e) => e.position === a.position && e.user === a.user && e.item === a.item), `acknowledged write at ${a.position} is in the log`);
});

test('SIGTERM with a request that cannot finish within the drain timeout: the connection is cut, exit 1', async () => {
  const { repo } = repoWith('t');
  const server = spawnServer(['--name', 't', '--repo', repo, '--port', '0', '--poll-seconds', '0'], { PROMPTMM_DRAIN_TIMEOUT_MS: '1000' });
  const port = Number(new URL(await server.url).port);
  const exited = new Promise<number | null>((r) => server.child.on('exit', (code) => r(code)));
  // Headers and one byte of a 1000-byte body: in flight until the request timeout (15 s), far past the drain.
  const slow = await rawConnect(port);
  slow.socket.write(rawRequest('POST', '/recommend', '{', { 'content-length': '1000' }));
  const ok = await rawConnect(port);
  ok.socket.write(rawRequest('GET', '/recommend?user=u1&k=5'));
  assert.equal((await ok.responsesAt(1))[0].status, 200);
  server.child.kill('SIGTERM');
  const code = await exited;
  assert.equal(code, 1, server.stderr().slice(-3000));
  assert.match(server.stderr(), /drain timed out: \d+ connection\(s\) still open were cut off/);
  assert.doesNotMatch(server.stderr(), /shut down cleanly/);
  const o = await slow.done;
  assert.deepEqual(o.responses, [], 'the slow request got no answer');
  assert.equal((await ok.done).responses.length, 1, 'the idle keep-alive connection was closed');
});
