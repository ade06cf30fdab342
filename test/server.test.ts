/** The HTTP API through fastify.inject: answers, cold starts, every bad input, readiness, metrics, reload. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { versionDir } from '../repository/versions.js';
import { MAX_BATCH_USERS, MAX_K } from '../server/common/schemas.js';
import { HNSW, repoWith, smallBundle, testServer } from '../test-support/serving.js';

const { repo, input } = repoWith('m');
const s = await testServer(repo, 'm');
const app = s.app;
after(() => s.close());
const D = input.dim;

const seenOf = (u: number) => new Set(Array.from(input.seen.indices.subarray(input.seen.indptr[u], input.seen.indptr[u + 1]), (r) => `i${r}`));
function dot(u: number, item: string): number {
  const r = Number(item.slice(1));
  let s = 0;
  for (let j = 0; j < D; j++) s += input.userEmbeddings[u * D + j] * input.itemEmbeddings[r * D + j];
  return s;
}
function bruteForce(u: number, k: number, excludeSeen = true): string[] {
  const seen = seenOf(u);
  return input.ids.items
    .filter((i) => !excludeSeen || !seen.has(i))
    .map((i, n) => ({ i, s: dot(u, i), n }))
    .sort((a, b) => b.s - a.s || Number(a.i.slice(1)) - Number(b.i.slice(1)))
    .slice(0, k)
    .map((x) => x.i);
}
async function get(url: string) {
  const r = await app.inject({ method: 'GET', url });
  return { status: r.statusCode, body: r.json() };
}

test('GET /recommend: k unseen items by the student dot product, ann and exact agree with brute force', async () => {
  for (const u of [3, 17, 150]) {
    for (const retrieval of ['ann', 'exact']) {
      const { status, body } = await get(`/recommend?user=u${u}&k=10&retrieval=${retrieval}`);
      assert.equal(status, 200);
      assert.equal(body.user, `u${u}`);
      assert.equal(body.model_version, 1);
      assert.equal(body.retrieval, retrieval);
      assert.equal(body.cold_start, false);
      assert.equal(body.items.length, 10);
      const seen = seenOf(u);
      for (const it of body.items) {
        assert.ok(!seen.has(it.item), `${it.item} was seen`);
        assert.ok(Math.abs(it.score - dot(u, it.item)) < 1e-5);
      }
      assert.deepEqual(body.items.map((x: { item: string }) => x.item), bruteForce(u, 10));
    }
  }
});

test('seen items are included on request; k larger than the unseen catalog returns what it allows', async () => {
  const u = 5;
  const { body } = await get(`/recommend?user=u${u}&k=20&exclude_seen=false&retrieval=exact`);
  assert.deepEqual(body.items.map((x: { item: string }) => x.item), bruteForce(u, 20, false));
  for (const retrieval of ['ann', 'exact']) {
    const all = await get(`/recommend?user=u${u}&k=${MAX_K}&retrieval=${retrieval}`);
    assert.equal(all.status, 200);
    assert.equal(all.body.items.length, 300 - seenOf(u).size);
    const seenLast = await get(`/recommend?user=u${u}&k=300&exclude_seen=false&retrieval=${retrieval}`);
    assert.equal(seenLast.body.items.length, 300);
  }
});

test('cold start: unknown users and users without history get the most popular unseen items', async () => {
  const pop = Array.from(input.popularity, (p, r) => ({ p, r })).sort((a, b) => b.p - a.p || a.r - b.r);
  for (const user of ['u0', 'someone-new']) {
    const { status, body } = await get(`/recommend?user=${user}&k=5`);
    assert.equal(status, 200);
    assert.equal(body.cold_start, true);
    assert.deepEqual(body.items.map((x: { item: string }) => x.item), pop.slice(0, 5).map((x) => `i${x.r}`));
    assert.equal(body.items[0].score, pop[0].p);
  }
});

test('POST /recommend answers a batch in order', async () => {
  const r = await app.inject({ method: 'POST', url: '/recommend', payload: { users: ['u3', 'nobody', 'u17'], k: 4, retrieval: 'exact' } });
  assert.equal(r.statusCode, 200);
  const b = r.json();
  assert.equal(b.model_version, 1);
  assert.deepEqual(b.results.map((x: { user: string }) => x.user), ['u3', 'nobody', 'u17']);
  assert.deepEqual(b.results[2].items.map((x: { item: string }) => x.item), bruteForce(17, 4));
  assert.equal(b.results[1].cold_start, true);
});

test('bad input: 400 with a JSON error naming the field, never a 500', async () => {
  const cases: [string, string][] = [
    ['/recommend?k=3', 'user'],
    ['/recommend?user=&k=3', 'user'],
    [`/recommend?user=${'x'.repeat(257)}`, 'user'],
    ['/recommend?user=u1&k=0', 'k'],
    [`/recommend?user=u1&k=${MAX_K + 1}`, 'k'],
    ['/recommend?user=u1&k=abc', 'k'],
    ['/recommend?user=u1&k=2.5', 'k'],
    ['/recommend?user=u1&retrieval=fast', 'retrieval'],
    ['/recommend?user=u1&exclude_seen=maybe', 'exclude_seen'],
  ];
  for (const [url, field] of cases) {
    const { status, body } = await get(url);
    assert.equal(status, 400, url);
    assert.equal(body.field, field, url);
    assert.match(body.message, new RegExp(field), url);
  }
  const posts: [unknown, string | undefined][] = [
    [{ users: [], k: 3 }, 'users'],
    [{ users: Array.from({ length: MAX_BATCH_USERS + 1 }, (_, i) => `u${i}`) }, 'users'],
    [{ k: 3 }, 'users'],
    [{ users: ['u1'], k: -1 }, 'k'],
    [{ users: ['u1'], colour: 'red' }, 'colour'],
    [{ users: [''] }, 'users.0'],
  ];
  for (const [payload, field] of posts) {
    const r = await app.inject({ method: 'POST', url: '/recommend', payload: payload as object });
    assert.equal(r.statusCode, 400, JSON.stringify(payload));
    assert.equal(r.json().field, field, JSON.stringify(payload));
  }
  const notJson = await app.inject({ method: 'POST', url: '/recommend', headers: { 'content-type': 'application/json' }, payload: '{"users": [' });
  assert.equal(notJson.statusCode, 400);
  assert.ok(!notJson.body.includes('    at '), 'no stack trace');
  const big = await app.inject({ method: 'POST', url: '/recommend', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ users: ['x'.repeat(2 << 20)] }) });
  assert.equal(big.statusCode, 413);
  const missing = await get('/nothing-here');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error, 'Not Found');
});

test('/healthz, /readyz and /metrics', async () => {
  assert.deepEqual((await get('/healthz')).body, { status: 'ok' });
  const ready = await get('/readyz');
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.body.model, { name: 'm', version: 1, items: 300, users: 200, dim: 16, provider: 'cpu', ef: 400, dataset: input.dataset.name });
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  for (const name of [
    'promptmm_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/recommend",status_code="200"}',
    'promptmm_http_request_duration_seconds_count{method="GET",route="/recommend",status_code="400"}',
    'promptmm_recommendations_total{retrieval="ann"}',
    'promptmm_cold_starts_total',
    'promptmm_model_version{model="m"} 1',
    'promptmm_model_items 300',
    'promptmm_model_load_failures_total 0',
    'promptmm_onnx_execution_provider{provider="cpu"} 1',
    'promptmm_process_cpu_seconds_total',
  ]) {
    assert.ok(text.includes(name), `metrics should include ${name}`);
  }
});

test('reload: token required; a new version swaps in; a broken one is refused and the old keeps serving', async () => {
  assert.equal((await app.inject({ method: 'POST', url: '/admin/reload' })).statusCode, 401);
  assert.equal((await app.inject({ method: 'POST', url: '/admin/reload', headers: { authorization: 'Bearer wrong' } })).statusCode, 401);
  const auth = { authorization: 'Bearer secret' };

  exportBundle(smallBundle('m', 2), { repo, hnsw: HNSW });
  // Requests in flight during the swap all succeed, on the old or the new version.
  const during = Array.from({ length: 40 }, (_, i) => app.inject({ method: 'GET', url: `/recommend?user=u${1 + i}&k=5&retrieval=${i % 2 ? 'ann' : 'exact'}` }));
  const r = await app.inject({ method: 'POST', url: '/admin/reload', headers: auth });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), { changed: true, version: 2, refused: [] });
  for (const res of await Promise.all(during)) {
    assert.equal(res.statusCode, 200);
    assert.ok([1, 2].includes(res.json().model_version));
  }
  assert.equal((await get('/recommend?user=u3&k=3')).body.model_version, 2);

  const v3 = exportBundle(smallBundle('m', 3), { repo, hnsw: HNSW });
  const f = join(v3.dir, 'item_embeddings.npy');
  const bytes = readFileSync(f);
  bytes[bytes.length - 5] ^= 0x40;
  writeFileSync(f, bytes);
  const refused = await app.inject({ method: 'POST', url: '/admin/reload', headers: auth });
  const rb = refused.json();
  assert.equal(rb.changed, false);
  assert.equal(rb.version, 2);
  assert.equal(rb.refused[0].version, 3);
  assert.match(rb.refused[0].reason, /item_embeddings\.npy: sha256/);
  assert.equal((await get('/readyz')).body.model.version, 2);
  assert.equal((await get('/recommend?user=u3&k=3')).status, 200);
  assert.match((await app.inject({ method: 'GET', url: '/metrics' })).body, /promptmm_model_load_failures_total 1/);
  void versionDir;
});

test('without PROMPTMM_TOKEN the admin endpoints are off; a missing model is a clear error', async () => {
  const other = await testServer(repo, 'm', { token: undefined });
  assert.equal((await other.app.inject({ method: 'POST', url: '/admin/reload' })).statusCode, 404);
  await other.close();
  await assert.rejects(testServer(repo, 'nope'), /model nope not found/);
});
