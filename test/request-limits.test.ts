/**
 * Hostile but well-formed requests (issue 17, items 1, 2, 8, 10): numbers that slip past ranges,
 * ids the retrain cannot absorb, batches without a cost limit, pipelining, auth and method details.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { MAX_BATCH_USERS, MAX_K } from '../server/common/schemas.js';
import { repositoryRelative } from '../server/routes/admin.js';
import { REQUEST_LIMITS } from '../server/routes/recommend.js';
import { HNSW, repoWith, smallBundle, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
const { repo } = repoWith('r');
const s = await testServer(repo, 'r');
after(() => s.close());
const app = s.app;

const get = (url: string) => app.inject({ method: 'GET', url });
const postJson = (url: string, body: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: body });

function assert400(r: { statusCode: number; body: string; json: () => { field?: string; message: string } }, field: string, what: string) {
  assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
  assert.equal(r.json().field, field, what);
  assert.ok(r.json().message.includes(field), `${what}: the message names ${field}`);
}

test('GET /recommend: k only as a plain decimal integer in range, given once', async () => {
  for (const k of ['Infinity', '1e309', '-Infinity', 'NaN', '0x10', '+5', '%2010', '10%20', 'true', '010', '1e2', '5.0', '', '1_000', '９']) {
    assert400(await get(`/recommend?user=u3&k=${k}`), 'k', `k=${k}`);
  }
  assert400(await get('/recommend?user=u3&k=1&k=2'), 'k', 'k twice');
  assert400(await get(`/recommend?user=u3&k=${MAX_K + 1}`), 'k', 'k over the maximum');
  assert400(await get('/recommend?user=u3&k=99999999999999999999'), 'k', 'k beyond 2^53');
  const ok = await get('/recommend?user=u3&k=7');
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().items.length, 7);
  assert400(await get('/recommend?user=u3&exclude_seen=1'), 'exclude_seen', 'exclude_seen=1');
  assert400(await get('/recommend?user=u3&kk=3'), 'kk', 'an unknown parameter');
});

test('JSON bodies are not coerced: k and exclude_seen must be JSON numbers and booleans', async () => {
  for (const k of ['"Infinity"', '"10"', 'true', 'null', '1e309', '-1e309', '2.5', '[10]', '{}']) {
    assert400(await postJson('/recommend', `{"users":["u3"],"k":${k}}`), 'k', `k: ${k}`);
  }
  assert400(await postJson('/recommend', '{"users":["u3"],"exclude_seen":"false"}'), 'exclude_seen', 'exclude_seen as a string');
  assert400(await postJson('/recommend', '{"users":[3]}'), 'users.0', 'a number as a user id');
  const ok = await postJson('/recommend', '{"users":["u3"],"k":4}');
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().results[0].items.length, 4);
});

test('POST /interactions: ts is an integer of ms since the epoch a Date can hold, or absent', async () => {
  for (const ts of ['null', 'true', '1e300', String(2 ** 64), '"5"', '-1', '1.5', '8640000000000001']) {
    assert400(await postJson('/interactions', `{"interactions":[{"user":"u1","item":"i1","ts":${ts}}]}`, auth), 'interactions.0.ts', `ts: ${ts}`);
  }
  const ok = await postJson('/interactions', '{"interactions":[{"user":"u1","item":"i1","ts":1700000000000},{"user":"u1","item":"i2"}]}', auth);
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().accepted, 2);
});

test('ids with control characters, line separators or lone surrogates are a 400 naming the field, everywhere', async () => {
  const bad = ['a\u0000b', 'a\nb', 'a\tb', 'a\rb', 'a\u007fb', 'a\u0085b', 'a\u009fb', 'a\u2028b', '\ud800x', 'x\udfff'];
  for (const id of bad) {
    const what = JSON.stringify(id);
    if (!/[\ud800-\udfff]/.test(id)) assert400(await get(`/recommend?user=${encodeURIComponent(id)}`), 'user', `GET ${what}`);
    assert400(await postJson('/recommend', `{"users":["u1",${JSON.stringify(id)}]}`), 'users.1', `POST /recommend ${what}`);
    const body = (user: string, item: string) => JSON.stringify({ interactions: [{ user: 'u1', item: 'i1' }, { user: 'u2', item: 'i2' }, { user: 'u3', item: 'i3' }, { user, item }] });
    assert400(await postJson('/interactions', body(id, 'i1'), auth), 'interactions.3.user', `interaction user ${what}`);
    assert400(await postJson('/interactions', body('u1', id), auth), 'interactions.3.item', `interaction item ${what}`);
  }
  assert400(await postJson('/interactions', JSON.stringify({ interactions: [{ user: 'x'.repeat(257), item: 'i1' }] }), auth), 'interactions.0.user', 'a 257-character id');
  const before = s.log.position;
  // Printable non-ASCII ids (accents, emoji, CJK) and 256 characters are fine.
  const ok = await postJson('/interactions', JSON.stringify({ interactions: ['élodie', '用户', 'a 😀 b', 'y'.repeat(256)].map((user) => ({ user, item: 'i4' })) }), auth);
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().accepted, 4);
  assert.equal(s.log.position, before + 4);
  assert.equal((await get(`/recommend?user=${encodeURIComponent('a 😀 b')}`)).statusCode, 200);
});

test('a batch asking for more than users × k list entries is a 400 naming k and the limit', async () => {
  const users = Array.from({ length: MAX_BATCH_USERS }, (_, i) => `u${i % 200}`);
  const per = REQUEST_LIMITS.maxBatchEntries / MAX_BATCH_USERS;
  const over = await app.inject({ method: 'POST', url: '/recommend', payload: { users, k: per + 1 } });
  assert400(over, 'k', 'over the cost limit');
  assert.ok(over.json().message.includes(String(REQUEST_LIMITS.maxBatchEntries)), over.body);
  assert400(await app.inject({ method: 'POST', url: '/recommend', payload: { users, k: MAX_K } }), 'k', '256 × 1000');
  const ok = await app.inject({ method: 'POST', url: '/recommend', payload: { users, k: per } });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().results.length, MAX_BATCH_USERS);
  // Few users may still ask for the largest k.
  const few = await app.inject({ method: 'POST', url: '/recommend', payload: { users: users.slice(0, REQUEST_LIMITS.maxBatchEntries / MAX_K), k: MAX_K } });
  assert.equal(few.statusCode, 200);
});

test('a batch yields to the event loop between slices of users; too much batch work at once is a 503 with Retry-After', async () => {
  const limited = await testServer(repo, 'r', { requestLimits: { maxBatchEntries: 128, sliceEntries: 1, maxEntriesInFlight: 128 } });
  try {
    const users = Array.from({ length: 128 }, (_, i) => `u${1 + (i % 199)}`);
    const batch = () => limited.app.inject({ method: 'POST', url: '/recommend', payload: { users, k: 1, retrieval: 'ann' } });
    // The ANN path is synchronous work: without slices a batch is one block and no turn passes.
    let turns = 0;
    let done = false;
    const tick = () => {
      turns++;
      if (!done) setImmediate(tick);
    };
    const r = batch();
    setImmediate(tick);
    const res = await r;
    done = true;
    assert.equal(res.statusCode, 200);
    assert.ok(turns >= users.length - 8, `the loop turned ${turns} times during a batch of ${users.length} one-user slices`);

    // Two at once: the second arrives while the first is in its slices, and the budget is one batch.
    const both = await Promise.all([batch(), batch()]);
    const statuses = both.map((x) => x.statusCode).sort();
    assert.deepEqual(statuses, [200, 503]);
    const busy = both.find((x) => x.statusCode === 503)!;
    assert.equal(busy.headers['retry-after'], '1');
    assert.match(busy.json().message, /busy/);
    assert.equal((await batch()).statusCode, 200, 'the budget is given back');
  } finally {
    await limited.close();
  }
  // A start refused part-way (after the log and the search threads were opened) leaves no descriptor open.
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  await assert.rejects(testServer(repo, 'r', { requestLimits: { maxEntriesInFlight: 10, maxBatchEntries: 20 } }), /maxEntriesInFlight \(10\) must be at least maxBatchEntries/);
  await assert.rejects(testServer(repo, 'r', { requestLimits: { sliceEntries: 0 }, searchThreads: 1 }), /sliceEntries must be a positive integer/);
  assert.equal(fds(), before, 'no file descriptor left open by the failed starts');
});

test('Bearer is case-insensitive; a blank token is refused at start-up', async () => {
  for (const h of ['Bearer secret', 'bearer secret', 'BEARER secret', 'Bearer  secret']) {
    assert.equal((await app.inject({ method: 'POST', url: '/admin/reload', headers: { authorization: h } })).statusCode, 200, h);
  }
  for (const h of ['Bearer', 'Bearer ', 'Basic secret', 'Bearersecret', 'Bearer secret2']) {
    assert.equal((await app.inject({ method: 'POST', url: '/admin/reload', headers: { authorization: h } })).statusCode, 401, h);
  }
  for (const token of [' ', '\t', ' \n ', '']) {
    await assert.rejects(testServer(repo, 'r', { token }), /PROMPTMM_TOKEN is set but blank/, JSON.stringify(token));
  }
});

test('a wrong method on a known URL is a 405 with Allow; an unknown URL stays a 404', async () => {
  for (const [method, url, allow] of [
    ['DELETE', '/recommend', 'GET, HEAD, POST'],
    ['PUT', '/interactions', 'POST'],
    ['GET', '/interactions', 'POST'],
    ['GET', '/admin/reload', 'POST'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['PATCH', '/recommend?user=u1', 'GET, HEAD, POST'],
  ] as const) {
    const r = await app.inject({ method, url });
    assert.equal(r.statusCode, 405, `${method} ${url}`);
    assert.equal(r.headers.allow, allow, `${method} ${url}`);
    assert.equal(r.json().error, 'Method Not Allowed');
  }
  assert.equal((await app.inject({ method: 'DELETE', url: '/nothing' })).statusCode, 404);
});

test('/admin/reload refusal reasons carry repository-relative names, not absolute paths', async () => {
  const v = exportBundle(smallBundle('r', 4), { repo, hnsw: HNSW });
  const f = join(v.dir, 'user_embeddings.npy');
  const bytes = readFileSync(f);
  bytes[bytes.length - 3] ^= 0x10;
  writeFileSync(f, bytes);
  const r = await app.inject({ method: 'POST', url: '/admin/reload', headers: auth });
  assert.equal(r.statusCode, 200);
  const reason: string = r.json().refused[0].reason;
  assert.ok(!reason.includes(repo), `no repository path in: ${reason}`);
  assert.ok(!/(^|\s)\//.test(reason), `no absolute path in: ${reason}`);
  assert.match(reason, new RegExp(`r/${v.version}\\b`));
  assert.match(reason, /user_embeddings\.npy/);
  assert.equal(repositoryRelative('/srv/models/m/7/seen_offsets.npy: bad; see /etc/x.conf', 7), 'm/7/seen_offsets.npy: bad; see x.conf');
});

/** Writes raw bytes to a listening server; resolves with what came back once it closes or goes quiet. */
async function raw(port: number, bytes: string): Promise<string> {
  const sock = connect(port, '127.0.0.1');
  let data = '';
  sock.on('data', (b) => (data += b.toString()));
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('connect', r));
  sock.write(bytes);
  // Quiet for 300 ms after the last byte, or closed, or 10 s at most: a bound, not a timing claim.
  await new Promise<void>((res) => {
    let t = setTimeout(res, 10_000);
    const quiet = () => {
      clearTimeout(t);
      t = setTimeout(res, 300);
    };
    sock.on('data', quiet);
    sock.once('close', () => {
      clearTimeout(t);
      res();
    });
  });
  sock.destroy();
  return data;
}

test('pipelining: a request behind an unparsable body is answered; one behind a connection-closing 413 is not run', async () => {
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const port = Number(new URL(base).port);
  const write = (user: string) => {
    const body = JSON.stringify({ interactions: [{ user, item: 'i2' }] });
    return `POST /interactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  };
  const bad = '{"users": [';
  let p0 = s.log.position;
  let out = await raw(port, `POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${bad.length}\r\n\r\n${bad}${write('pipe-1')}`);
  assert.equal(out.match(/HTTP\/1.1 \d+/g)?.join(), 'HTTP/1.1 400,HTTP/1.1 200', out);
  assert.equal(s.log.position, p0 + 1, 'the write behind it ran and was answered');

  // A chunked body over the limit: the 413 closes the connection, so the write behind it must not run.
  const big = JSON.stringify({ users: ['x'.repeat(1.5 * (1 << 20))] });
  p0 = s.log.position;
  out = await raw(port, `POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n${write('pipe-2')}`);
  assert.match(out, /^HTTP\/1.1 413/);
  const answered = (out.match(/log_position/g) ?? []).length;
  assert.equal(s.log.position - p0, answered, 'a write ran only if it was answered');
});
