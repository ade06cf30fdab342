/** Learning while serving: POST /interactions, immediate effect, rounds, replay across restarts and kill -9. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { spawnServer } from '../loadtest/spawn-server.js';
import { HNSW, repoWith, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
const { repo, input } = repoWith('o');
// (rebuildDuty 1: rebuilds back to back, as the rebuild test below needs right after the load)
const s = await testServer(repo, 'o', { online: { roundEvery: 0, roundSeconds: 0, rebuildDuty: 1 } });
after(() => s.close());
const app = s.app;

async function rec(user: string, k = 10, retrieval = 'exact') {
  const r = await app.inject({ method: 'GET', url: `/recommend?user=${user}&k=${k}&retrieval=${retrieval}` });
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as { cold_start: boolean; items: { item: string; score: number }[] };
}
async function post(interactions: object[], headers: Record<string, string> = auth) {
  return app.inject({ method: 'POST', url: '/interactions', headers, payload: { interactions } });
}

test('an interaction is acknowledged, its item is no longer recommended, and the user vector moves', async () => {
  const before = await rec('u3');
  const top = before.items[0].item;
  const r = await post([{ user: 'u3', item: top }]);
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { accepted: 1, rejected: [], log_position: 1 });
  const after1 = await rec('u3');
  assert.ok(!after1.items.some((x) => x.item === top), 'the interacted item is filtered');
  assert.notDeepEqual(after1.items.map((x) => x.score), before.items.slice(1, 11).map((x) => x.score), 'scores changed: the vector moved');
});

test('unknown items are rejected and counted; a new user stops being a cold start on first interaction', async () => {
  const r = await post([{ user: 'brand-new', item: 'i7' }, { user: 'brand-new', item: 'no-such-item' }]);
  const b = r.json();
  assert.equal(b.accepted, 1);
  assert.deepEqual(b.rejected, [{ index: 1, user: 'brand-new', item: 'no-such-item', reason: 'unknown item (not in the served catalog)' }]);
  const rr = await rec('brand-new');
  assert.equal(rr.cold_start, false);
  assert.ok(!rr.items.some((x) => x.item === 'i7'));
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(metrics, /promptmm_interactions_rejected_total 1/);
  assert.match(metrics, /promptmm_interactions_accepted_total 2/);
  assert.match(metrics, /promptmm_interaction_ack_seconds_count 2/);
});

test('bad interaction input: 400 naming the field; no token: 401', async () => {
  assert.equal((await post([{ user: 'u1', item: 'i1' }], {})).statusCode, 401);
  for (const [payload, field] of [
    [[], 'interactions'],
    [[{ user: 'u1' }], 'interactions.0.item'],
    [[{ user: '', item: 'i1' }], 'interactions.0.user'],
    [[{ user: 'u1', item: 'i1', ts: 'yesterday' }], 'interactions.0.ts'],
  ] as const) {
    const r = await post(payload as unknown as object[]);
    assert.equal(r.statusCode, 400, JSON.stringify(payload));
    assert.equal(r.json().field, field);
  }
});

/** Posts interactions, runs a round, and checks that item vectors moved and ann = exact after it. */
async function roundKeepsAnnExact(srv: Awaited<ReturnType<typeof testServer>>, users: string[]): Promise<void> {
  const call = (url: string, payload?: object) => srv.app.inject({ method: payload ? 'POST' : 'GET', url, headers: auth, payload });
  const batch = Array.from({ length: 60 }, (_, n) => ({ user: `u${10 + (n % 30)}`, item: `i${(n * 7) % 300}` }));
  assert.equal((await call('/interactions', { interactions: batch })).json().accepted, 60);
  const m = srv.holder.model!;
  const before = m.itemVectors.slice();
  assert.equal((await call('/admin/finetune', {})).statusCode, 200);
  let moved = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== m.itemVectors[i]) moved++;
  assert.ok(moved > 0, 'item vectors moved');
  for (const u of users) {
    const a = (await call(`/recommend?user=${u}&k=10&retrieval=ann`)).json() as { items: { item: string }[] };
    const e = (await call(`/recommend?user=${u}&k=10&retrieval=exact`)).json() as { items: { item: string }[] };
    assert.deepEqual(a.items.map((x) => x.item), e.items.map((x) => x.item), `${u}: ann = exact after the round`);
  }
  assert.match((await call('/metrics')).body, /promptmm_finetune_round_seconds_count 1/);
}

test('a fine-tuning round that moves much of the catalog rebuilds the ANN index off the event loop; ann = exact after', async () => {
  const annBefore = s.holder.model!.ann;
  await roundKeepsAnnExact(s, ['u12', 'u25']);
  assert.notEqual(s.holder.model!.ann, annBefore, 'a new index was swapped in');
});

test('a round that moves few items re-links them in the served index in place; ann = exact after', async () => {
  const { repo: r5 } = repoWith('inplace');
  const c = await testServer(r5, 'inplace', { online: { roundEvery: 0, roundSeconds: 0, rebuildShare: 2 } });
  try {
    const annBefore = c.holder.model!.ann;
    await roundKeepsAnnExact(c, ['u12', 'u25', 'u31']);
    assert.equal(c.holder.model!.ann, annBefore, 'the same index, re-linked');
  } finally {
    await c.close();
  }
});

function startServe() {
  return spawnServer(['--name', 'k', '--repo', crashRepo, '--port', '0', '--poll-seconds', '0', '--round-every', '0', '--round-seconds', '0'], { PROMPTMM_TOKEN: 'secret' });
}
const crashRepo = repoWith('k').repo;

test('kill -9 at any moment: every acknowledged interaction is present and applied after restart', async () => {
  const a = startServe();
  const base = await a.url;
  const acked: { user: string; item: string }[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let n = 0; !stop; n++) {
      const x = { user: `u${1 + ((w * 50 + n) % 199)}`, item: `i${(w * 97 + n * 13) % 300}` };
      try {
        const r = await fetch(`${base}/interactions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ interactions: [x] }) });
        if (r.status === 200) acked.push(x);
      } catch {
        return; // the server died under us: that request was never acknowledged
      }
    }
  });
  await new Promise((r) => setTimeout(r, 400));
  a.child.kill('SIGKILL');
  stop = true;
  await Promise.all(writers);
  assert.ok(acked.length > 10, `${acked.length} acknowledged before the kill`);

  // a torn record at the tail, as a crash mid-write leaves
  const logDir = join(crashRepo, 'k', 'interactions');
  const seg = readdirSync(logDir).sort().at(-1)!;
  appendFileSync(join(logDir, seg), Buffer.from([99, 0, 0, 0, 5]));

  const b = startServe();
  const base2 = await b.url;
  try {
    assert.match(b.stderr(), /corrupt tail skipped/);
    assert.match(b.stderr(), /interaction log replayed/);
    for (const x of acked) {
      const r = await fetch(`${base2}/recommend?user=${x.user}&k=1000&retrieval=exact`);
      const items = ((await r.json()) as { items: { item: string }[] }).items.map((i) => i.item);
      assert.ok(!items.includes(x.item), `${x.user}/${x.item} acknowledged before the kill is applied (seen) after restart`);
    }
  } finally {
    b.child.kill('SIGTERM');
  }
});
void input;

test('with the result cache on, an interaction invalidates that user\'s cached lists', async () => {
  const { repo: r2 } = repoWith('c');
  const c = await testServer(r2, 'c', { cacheUsers: 100, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const get = async () => (await c.app.inject({ method: 'GET', url: '/recommend?user=u4&k=5' })).json() as { items: { item: string }[] };
    const first = await get();
    assert.deepEqual(await get(), first);
    assert.equal(c.holder.model!.cache.hits, 1);
    const top = first.items[0].item;
    const r = await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u4', item: top }] } });
    assert.equal(r.statusCode, 200);
    assert.ok(!(await get()).items.some((x) => x.item === top), 'the cached list was dropped');
  } finally {
    await c.close();
  }
});

/** The item ids a server answers for a user (k = 10). */
async function itemList(server: typeof app, user: string, retrieval: string): Promise<string[]> {
  const r = await server.inject({ method: 'GET', url: `/recommend?user=${user}&k=10&retrieval=${retrieval}` });
  return (r.json() as { items: { item: string }[] }).items.map((x) => x.item);
}

test('ann answers from cached candidates, and after an interaction, match the exact path', async () => {
  const { repo: r3 } = repoWith('cand');
  const c = await testServer(r3, 'cand', { cacheUsers: 100, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const list = (user: string, retrieval: string) => itemList(c.app, user, retrieval);
    for (const u of ['u6', 'u7', 'u8']) assert.deepEqual(await list(u, 'ann'), await list(u, 'exact'), `${u} before`);
    for (const u of ['u6', 'u7', 'u8']) {
      const top = (await list(u, 'ann'))[0];
      await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: u, item: top }] } });
      const ann = await list(u, 'ann');
      assert.ok(!ann.includes(top));
      assert.deepEqual(ann, await list(u, 'exact'), `${u} after an interaction`);
    }
  } finally {
    await c.close();
  }
});

test('after several interactions each, ann answers still match the exact path (no stale candidates)', async () => {
  const { repo: r5 } = repoWith('stale');
  const c = await testServer(r5, 'stale', { cacheUsers: 100, online: { roundEvery: 0, roundSeconds: 0 } });
  try {
    const list = (user: string, retrieval: string) => itemList(c.app, user, retrieval);
    let mismatches = 0;
    for (let u = 10; u < 40; u++) {
      await list(`u${u}`, 'ann'); // fills the user's candidate list
      for (let n = 0; n < 4; n++) {
        // items far down the list move the vector the most
        const item = `i${(u * 37 + n * 101) % 300}`;
        await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: `u${u}`, item }] } });
        if ((await list(`u${u}`, 'ann')).join() !== (await list(`u${u}`, 'exact')).join()) mismatches++;
      }
    }
    assert.equal(mismatches, 0, 'ann answers after interactions differ from exact ones');
  } finally {
    await c.close();
  }
});

test('a round after a swap to a smaller catalog ignores the old version\'s rows (no crash, no NaN)', async () => {
  const { repo: r4 } = repoWith('swap');
  const c = await testServer(r4, 'swap', { online: { roundEvery: 1e9, roundSeconds: 0 } });
  try {
    const r = await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u5', item: 'i250' }] } });
    assert.equal(r.statusCode, 200);
    exportBundle(syntheticBundle({ name: 'swap', users: 200, items: 100, dim: 16, seed: 2, seenPerUser: 8 }), { repo: r4, hnsw: HNSW });
    assert.equal((await c.reloader.reload()).version, 2);
    await c.online.round();
    const m = c.holder.model!;
    assert.equal(m.itemVectors.filter(Number.isNaN).length, 0);
    const ann = (await c.app.inject({ url: '/recommend?user=u7&k=3' })).json();
    const exact = (await c.app.inject({ url: '/recommend?user=u7&k=3&retrieval=exact' })).json();
    assert.deepEqual(ann.items, exact.items);
  } finally {
    await c.close();
  }
});

test('POST /interactions before any version is loaded is a 503, not a 500', async () => {
  const { repo: r5 } = repoWith('none');
  const { rmSync } = await import('node:fs');
  rmSync(join(r5, 'none', '1'), { recursive: true });
  const c = await testServer(r5, 'none');
  try {
    const r = await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user: 'u1', item: 'i1' }] } });
    assert.equal(r.statusCode, 503);
    assert.equal((await c.app.inject({ url: '/readyz' })).statusCode, 503);
  } finally {
    await c.close();
  }
});
