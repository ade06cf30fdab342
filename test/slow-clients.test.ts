/** Slow and idle clients over raw sockets: the server closes each within its (small, test) timeouts, and caps connections. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { CONNECTION_DEFAULTS } from '../server/server.js';
import { fromEnv } from '../core/defaults.js';
import { rawConnect, rawRequest, type RawConnection, type RawOutcome } from '../test-support/raw-http.js';
import { repoWith, testServer } from '../test-support/serving.js';

// Timeouts far below the defaults, so each case is over in well under a second; the bound
// every close is checked against is generous (a loaded machine), and far below what the same
// clients were held before: 90 s for slow headers, 73 s idle, forever for a slow body.
const connections = { headersTimeoutMs: 300, requestTimeoutMs: 500, keepAliveTimeoutMs: 300, socketTimeoutMs: 1500 };
const BOUND_MS = 10_000;

let s: Awaited<ReturnType<typeof testServer>>;
let port: number;
before(async () => {
  const { repo } = repoWith('slow');
  s = await testServer(repo, 'slow', { connections });
  port = Number(new URL(await s.app.listen({ host: '127.0.0.1', port: 0 })).port);
});
after(() => s.close());

/** Resolves with the outcome once the server closed the connection; null if it held it past the bound. */
async function closedByServer(c: RawConnection): Promise<RawOutcome | null> {
  let timer: NodeJS.Timeout | undefined;
  const held = new Promise<null>((r) => (timer = setTimeout(() => r(null), BOUND_MS)));
  const outcome = await Promise.race([c.done, held]);
  clearTimeout(timer);
  if (!outcome) c.close();
  return outcome;
}

test('a connection that sends nothing is closed', async () => {
  const c = await rawConnect(port);
  const o = await closedByServer(c);
  assert.ok(o, 'closed by the server');
  assert.ok(o.responses.every((r) => r.status === 408), `answers ${o.responses.map((r) => r.status)}`);
});

test('slow headers (half of them, then silence) are answered 408 and closed', async () => {
  const c = await rawConnect(port);
  c.socket.write('GET /recommend?user=u1&k=5 HTTP/1.1\r\nHost: x\r\n');
  const o = await closedByServer(c);
  assert.ok(o, 'closed by the server');
  assert.deepEqual(o.responses.map((r) => r.status), [408]);
});

test('a slow body (Content-Length 1000, one byte, then silence) is answered 408 and closed', async () => {
  const c = await rawConnect(port);
  c.socket.write(rawRequest('POST', '/recommend', '{', { 'content-length': '1000' }));
  const o = await closedByServer(c);
  assert.ok(o, 'closed by the server');
  assert.deepEqual(o.responses.map((r) => r.status), [408]);
});

test('an idle keep-alive connection is closed after its answer', async () => {
  const c = await rawConnect(port);
  c.socket.write(rawRequest('GET', '/recommend?user=u1&k=5'));
  const o = await closedByServer(c);
  assert.ok(o, 'closed by the server');
  assert.equal(o.end, 'closed');
  assert.deepEqual(o.responses.map((r) => [r.status, r.complete]), [[200, true]]);
});

test('a client that never reads its answer loses the connection', async () => {
  // Watched from the server's side: the client, not reading, would not see the close.
  const accepted: Socket[] = [];
  const onConnection = (sock: Socket) => accepted.push(sock);
  s.app.server.on('connection', onConnection);
  const c = await rawConnect(port);
  c.socket.pause();
  // Four big answers (200 users × 250 items, ~2 MB each): more than the socket buffers take.
  const big = rawRequest('POST', '/recommend', JSON.stringify({ users: Array.from({ length: 200 }, (_, i) => `u${i}`), k: 250 }));
  c.socket.write(big.repeat(4));
  const t0 = Date.now();
  let sock: Socket | undefined;
  while (!(sock = accepted.find((x) => x.remotePort === c.socket.localPort)) && Date.now() - t0 < BOUND_MS) await new Promise((r) => setTimeout(r, 10));
  s.app.server.off('connection', onConnection);
  assert.ok(sock, 'the server accepted the connection');
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    new Promise<boolean>((r) => (sock.destroyed ? r(true) : sock.once('close', () => r(true)))),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), BOUND_MS))),
  ]);
  clearTimeout(timer);
  c.close();
  assert.ok(closed, 'the server closed the connection of the client that stopped reading');
});

test('over the connection cap, new connections are closed unanswered while the open ones are answered', async () => {
  const { repo } = repoWith('cap');
  const capped = await testServer(repo, 'cap', { connections: { ...connections, keepAliveTimeoutMs: 60_000, maxConnections: 3 } });
  const cport = Number(new URL(await capped.app.listen({ host: '127.0.0.1', port: 0 })).port);
  const held: RawConnection[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const c = await rawConnect(cport);
      c.socket.write(rawRequest('GET', `/recommend?user=u${i + 1}&k=5`));
      assert.equal((await c.responsesAt(1))[0].status, 200);
      held.push(c);
    }
    const over = await rawConnect(cport);
    over.socket.write(rawRequest('GET', '/recommend?user=u9&k=5'));
    const o = await closedByServer(over);
    assert.ok(o, 'the connection over the cap was closed');
    assert.deepEqual(o.responses, [], 'and not answered');
    for (const [i, c] of held.entries()) {
      c.socket.write(rawRequest('GET', `/recommend?user=u${i + 4}&k=5`));
      const r = await c.responsesAt(2);
      assert.deepEqual(r.map((x) => x.status), [200, 200], `connection ${i} is still answered`);
    }
    const metrics = (await capped.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /^promptmm_connections_refused_total [1-9]/m);
    assert.match(metrics, /^promptmm_connections_open 3$/m);
  } finally {
    for (const c of held) c.close();
    await capped.close();
  }
});

test('connection settings are checked, naming the setting and its flag', async () => {
  const { repo } = repoWith('bad');
  await assert.rejects(testServer(repo, 'bad', { connections: { headersTimeoutMs: 20_000, requestTimeoutMs: 1000 } }), /headersTimeoutMs \(--headers-timeout-ms\) \(20000\) must not exceed requestTimeoutMs/);
  assert.throws(() => fromEnv('drainTimeoutMs', { PROMPTMM_DRAIN_TIMEOUT_MS: '5s' }), /PROMPTMM_DRAIN_TIMEOUT_MS.*"5s"/);
  await assert.rejects(testServer(repo, 'bad', { connections: { requestTimeoutMs: 1.5 } }), /requestTimeoutMs \(--request-timeout-ms\) must be an integer/);
  await assert.rejects(testServer(repo, 'bad', { connections: { maxConnections: 0 } }), /maxConnections \(--max-connections\) must be an integer from 1/);
  assert.equal(fromEnv('keepAliveTimeoutMs', { PROMPTMM_KEEP_ALIVE_TIMEOUT_MS: '70000' }), 70_000);
  assert.equal(fromEnv('socketTimeoutMs', { PROMPTMM_SOCKET_TIMEOUT_MS: '' }), CONNECTION_DEFAULTS.socketTimeoutMs);
  // An unset flag (undefined) keeps the default.
  const ok = await testServer(repo, 'bad', { connections: { drainTimeoutMs: undefined } });
  assert.equal(ok.connections.settings.drainTimeoutMs, CONNECTION_DEFAULTS.drainTimeoutMs);
  await ok.close();
});

test('while draining, /readyz answers 503 (a balancer sends no more) and the request is still answered', async () => {
  const { repo } = repoWith('drain');
  const s = await testServer(repo, 'drain');
  try {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const p = (s.app.server.address() as { port: number }).port;
    const c = await rawConnect(p);
    c.socket.write(rawRequest('GET', '/readyz'));
    const [before] = await c.responsesAt(1);
    assert.equal(before.status, 200);
    const drained = s.connections.drain();
    c.socket.write(rawRequest('GET', '/readyz'));
    const [, during] = await c.responsesAt(2);
    assert.equal(during.status, 503);
    assert.equal(JSON.parse(during.body.toString()).status, 'draining');
    assert.equal((await drained).timedOut, false);
  } finally {
    await s.close();
  }
});
