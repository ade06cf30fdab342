/** A fine-tuning round's in-place re-indexing within its time budget (round.ts refreshAnn, VersionState.drift). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { itemsToReindex } from '../server/online/round.js';
import type { ServingModel } from '../server/serving/serving-model.js';
import { repoWith, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };

test('itemsToReindex: items drifted by at least reindexMove of their norm, the most drifted (relative to the norm) first', async () => {
  // norms 1, 2, 10, 1, 4 (dim 1); drifts 0.5, 0.5, 0.05, 0, 1
  const m = { dim: 1, nItems: 5, itemVectors: Float32Array.from([1, -2, 10, 1, 4]), catalog: { deleted: new Set<number>() } } as unknown as ServingModel;
  const drift = Float32Array.from([0.5, 0.5, 0.05, 0, 1]);
  assert.deepEqual(await itemsToReindex(m, drift, 0.01), { items: [0, 1, 4], total: 3 }); // 0.05 / 10 = 0.005 < 0.01; 1 / 4 ties 0.5 / 2
  assert.deepEqual(await itemsToReindex(m, drift, 0.001), { items: [0, 1, 4, 2], total: 4 });
  assert.deepEqual(await itemsToReindex(m, drift, 0.3), { items: [0], total: 1 });
  // a limit keeps the head of the order and still counts them all
  assert.deepEqual(await itemsToReindex(m, drift, 0.001, 2), { items: [0, 1], total: 4 });
  // a deleted item is out of every answer: not re-indexed
  m.catalog.deleted.add(1);
  assert.deepEqual(await itemsToReindex(m, drift, 0.01), { items: [0, 4], total: 2 });
  // a catalog larger than a scan slice
  const big = { dim: 1, nItems: 50_000, itemVectors: new Float32Array(50_000).fill(1), catalog: { deleted: new Set<number>() } } as unknown as ServingModel;
  const bigDrift = new Float32Array(50_000);
  for (let i = 0; i < 50_000; i += 7) bigDrift[i] = 0.5 + i / 1e6;
  const r = await itemsToReindex(big, bigDrift, 0.01, 3);
  assert.equal(r.total, Math.ceil(50_000 / 7));
  assert.deepEqual(r.items, [49_994, 49_987, 49_980]);
});

/** Posts the same 60 interactions and runs one round on a fresh server with these online settings; returns what the test needs. */
async function oneRound(name: string, online: object) {
  const { repo } = repoWith(name);
  const c = await testServer(repo, name, { online: { roundEvery: 0, roundSeconds: 0, rebuildShare: 2, ...online } });
  const m = c.holder.model!;
  const before = m.itemVectors.slice();
  const batch = Array.from({ length: 60 }, (_, n) => ({ user: `u${10 + (n % 30)}`, item: `i${(n * 7) % 300}` }));
  assert.equal((await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: batch } })).json().accepted, 60);
  assert.equal((await c.app.inject({ method: 'POST', url: '/admin/finetune', headers: auth, payload: {} })).statusCode, 200);
  return { c, m, before, st: c.online!.stateOf(m) };
}

test('a round past its re-link budget indexes the most drifted item, and the others keep their drift for a later round', async () => {
  // (a budget this small lets one re-link through per round; reindexMove this large none at all)
  const budgeted = await oneRound('budget', { reindexBudgetMs: 1e-9 });
  const none = await oneRound('nolink', { reindexMove: 1e9 });
  try {
    const { m, before, st } = budgeted;
    const d = m.dim;
    const row = (a: Float32Array, it: number) => Array.from(a.subarray(it * d, (it + 1) * d));
    const dist = (a: number[], b: number[]) => Math.hypot(...a.map((x, i) => x - b[i]));
    // the same seeded round moved the same items the same way on both servers
    assert.deepEqual(Array.from(none.m.itemVectors), Array.from(m.itemVectors));
    const indexedNow: number[] = [];
    const stale: number[] = [];
    for (let it = 0; it < m.nItems; it++) {
      const now = row(m.itemVectors, it);
      if (dist(now, row(before, it)) === 0) continue;
      if (dist(m.ann.local.getPoint(it), now) < 1e-6) indexedNow.push(it);
      else stale.push(it);
    }
    assert.equal(indexedNow.length, 1, `one item re-linked, got ${indexedNow.length}`);
    assert.ok(stale.length > 10, `${stale.length} moved items left at their old place in the index`);
    assert.equal(st.drift[indexedNow[0]], 0);
    for (const it of stale) {
      assert.ok(dist(m.ann.local.getPoint(it), row(before, it)) < 1e-6, `item ${it} is still indexed at its bundle vector`);
      // the drift kept for a later round bounds how far the vector is from the indexed one
      assert.ok(st.drift[it] >= dist(row(m.itemVectors, it), row(before, it)) - 1e-5, `item ${it}: drift ${st.drift[it]} bounds its move`);
      assert.equal(st.drift[it], none.st.drift[it]);
    }
    // the one re-linked is the first of the order by relative drift (the other server kept every drift)
    assert.equal(indexedNow[0], (await itemsToReindex(m, none.st.drift, 0.01)).items[0]);
  } finally {
    await budgeted.c.close();
    await none.c.close();
  }
});

test('index rebuilds keep to their duty share: a fresh version counts as just rebuilt, and a rebuild makes the next rounds re-link in place', async () => {
  /** Two rounds on a fresh server; `ready` runs before the first; whether each swapped in a new index. */
  const rounds = async (name: string, rebuildDuty: number, ready?: (st: { nextRebuildAt: number }) => void) => {
    const { repo } = repoWith(name);
    const c = await testServer(repo, name, { online: { roundEvery: 0, roundSeconds: 0, rebuildShare: 0, rebuildDuty } });
    try {
      ready?.(c.online!.stateOf(c.holder.model!));
      const swaps: boolean[] = [];
      for (let r = 0; r < 2; r++) {
        const ann = c.holder.model!.ann;
        const batch = Array.from({ length: 30 }, (_, n) => ({ user: `u${10 + n}`, item: `i${(n * 7 + r) % 300}` }));
        assert.equal((await c.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: batch } })).json().accepted, 30);
        assert.equal((await c.app.inject({ method: 'POST', url: '/admin/finetune', headers: auth, payload: {} })).statusCode, 200);
        swaps.push(c.holder.model!.ann !== ann);
      }
      // either way the answers stay exact for a user of the batch (re-ranked on the live vectors, index refreshed)
      const a = (await c.app.inject({ url: '/recommend?user=u12&k=10&retrieval=ann' })).json() as { items: { item: string }[] };
      const e = (await c.app.inject({ url: '/recommend?user=u12&k=10&retrieval=exact' })).json() as { items: { item: string }[] };
      assert.deepEqual(a.items.map((x) => x.item), e.items.map((x) => x.item));
      return swaps;
    } finally {
      await c.close();
    }
  };
  // a tiny duty: the version's own (estimated) build keeps both rounds in place
  assert.deepEqual(await rounds('duty-fresh', 1e-6), [false, false]);
  // the same, with the fresh version's wait over: the first rebuilds, and its measured time keeps the second in place
  assert.deepEqual(await rounds('duty-after', 1e-6, (st) => (st.nextRebuildAt = 0)), [true, false]);
  // duty 1: back to back
  assert.deepEqual(await rounds('duty-one', 1), [true, true]);
});
