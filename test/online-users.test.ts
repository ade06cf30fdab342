/** The cap on users first seen online: least recently updated forgotten first, counted in /metrics, rows reused; bundle users stay. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { InteractionLog } from '../repository/interaction-log.js';
import { createServer } from '../server/server.js';
import { repoWith, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
type Server = Awaited<ReturnType<typeof testServer>>;
const post = (s: Server, user: string, item: string) => s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user, item }] } });
const metric = async (s: Server, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec((await s.app.inject({ url: '/metrics' })).body)?.[1]);
const quiet = { roundEvery: 0, roundSeconds: 0, snapshotEvery: 0, snapshotSeconds: 0 };

test('past maxOnlineUsers the least recently updated online user is forgotten: a cold start again, counted; bundle users stay', async () => {
  const { repo } = repoWith('cap');
  const s = await testServer(repo, 'cap', { online: { ...quiet, maxOnlineUsers: 3 } });
  try {
    for (const u of ['a', 'b', 'c']) assert.equal((await post(s, u, 'i1')).statusCode, 200);
    assert.equal((await post(s, 'a', 'i2')).statusCode, 200); // a is now the most recently updated
    assert.equal((await post(s, 'u5', 'i3')).statusCode, 200); // a bundle user: not counted
    assert.equal((await post(s, 'd', 'i1')).statusCode, 200); // evicts b, the least recently updated
    const m = s.holder.model!;
    assert.deepEqual(['a', 'b', 'c', 'd'].map((u) => m.userIndex.has(u)), [true, false, true, true]);
    assert.equal(m.nUsers, 200 + 3);
    assert.equal(await metric(s, 'promptmm_online_users'), 3);
    assert.equal(await metric(s, 'promptmm_online_user_evictions_total'), 1);
    const r = (await s.app.inject({ url: '/recommend?user=b&k=5' })).json();
    assert.equal(r.cold_start, true, 'an evicted user is a cold start');
    const again = (await s.app.inject({ url: '/recommend?user=a&k=5' })).json();
    assert.equal(again.cold_start, false);

    // Many more: the table stops growing (rows are reused) and bundle users are never evicted.
    const width = m.userVectors.length;
    for (let n = 0; n < 40; n++) assert.equal((await post(s, `x${n}`, `i${n}`)).statusCode, 200);
    assert.equal(s.holder.model!.userVectors.length, width, 'no growth past the cap');
    assert.equal(m.nUsers, 200 + 3);
    assert.equal(await metric(s, 'promptmm_online_user_evictions_total'), 41);
    assert.ok(m.userIndex.has('u5') && m.userIndex.has('u199'));

    // b comes back: a new user again, from its new item alone (its old seen items are gone with it).
    assert.equal((await post(s, 'b', 'i9')).statusCode, 200);
    const row = m.userIndex.get('b')!;
    assert.equal(m.seenCount(row), 1);
    assert.ok(m.isSeen(row, m.itemIndex.get('i9')!) && !m.isSeen(row, m.itemIndex.get('i1')!));
    const all = m.userVectors.subarray(0, m.nUsers * m.dim);
    assert.ok(all.every(Number.isFinite));
  } finally {
    await s.close();
  }
});

test('a round after evictions trains only the users that still hold their rows (a reused row is not trained on its old user\'s items)', async () => {
  const { repo } = repoWith('capround');
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const s = await createServer({ name: 'capround', repo, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: ['cpu'], pollSeconds: 0, token: 'secret', online: { ...quiet, maxOnlineUsers: 2, roundEvery: 1e9 } }, log);
  try {
    for (let n = 0; n < 10; n++) assert.equal((await post(s, `y${n}`, `i${n * 3}`)).statusCode, 200);
    await s.online.round();
    const done = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'fine-tuning round done');
    assert.equal(done?.interactions, 2, 'only y8 and y9 (the rows of y0..y7 went to later users)');
    const m = s.holder.model!;
    assert.ok(m.itemVectors.every(Number.isFinite) && m.userVectors.every(Number.isFinite));
    assert.deepEqual(['y8', 'y9'].map((u) => m.userIndex.has(u)), [true, true]);
  } finally {
    await s.close();
  }
});

test('the cap holds while the log is replayed on start: the most recently updated are kept', async () => {
  const { repo } = repoWith('capreplay');
  const log = InteractionLog.open(join(repo, 'capreplay', 'interactions'));
  await log.append(Array.from({ length: 10 }, (_, n) => ({ user: `z${n}`, item: `i${n}`, ts: n })));
  await log.close();
  const s = await testServer(repo, 'capreplay', { online: { ...quiet, maxOnlineUsers: 3 } });
  try {
    const m = s.holder.model!;
    assert.deepEqual(Array.from({ length: 10 }, (_, n) => m.userIndex.has(`z${n}`)), [false, false, false, false, false, false, false, true, true, true]);
    assert.equal(await metric(s, 'promptmm_online_users'), 3);
    assert.equal(m.appliedPosition, 10);
  } finally {
    await s.close();
  }
});
