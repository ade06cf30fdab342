/** Online-state snapshots: a restart of the same version loads one and replays only the log after it; a new version or a damaged file falls back to the log. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { captureSnapshot, checkSnapshot, decodeSnapshot, encodeSnapshot, snapshotPath, SnapshotError } from '../server/online/snapshot.js';
import { VersionState } from '../server/online/version-state.js';
import { HNSW, repoWith, smallBundle, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
type Server = Awaited<ReturnType<typeof testServer>>;
const quiet = { roundEvery: 0, roundSeconds: 0, snapshotEvery: 0, snapshotSeconds: 0 };
const metric = async (s: Server, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec((await s.app.inject({ url: '/metrics' })).body)?.[1]);
const post = (s: Server, interactions: { user: string; item: string }[]) => s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions } });

/** 120 interactions of bundle users u1..u40 and new users n1, n3, n5, n7, n9. */
const firstBatch = Array.from({ length: 120 }, (_, n) => ({ user: n % 4 === 3 ? `n${n % 10}` : `u${1 + (n % 40)}`, item: `i${(n * 11) % 300}` }));
/** 30 more, of users the first batch did not touch. */
const laterBatch = Array.from({ length: 30 }, (_, n) => ({ user: n % 2 ? `u${100 + n}` : `later${n}`, item: `i${(n * 13) % 300}` }));

async function appendToLog(dir: string, xs: { user: string; item: string }[]): Promise<void> {
  const log = InteractionLog.open(dir);
  await log.append(xs.map((x, ts) => ({ ...x, ts })));
  await log.close();
}

/** Serves `repo`'s model `name`, posts the first batch and runs a round (user and item vectors move), closes (snapshot); returns the state at close. */
async function firstRun(repo: string, name: string) {
  const a = await testServer(repo, name, { online: quiet });
  assert.equal((await post(a, firstBatch)).json().accepted, 120);
  await a.online.round();
  const m = a.holder.model!;
  const users = new Map(['u1', 'u7', 'u40', 'n3', 'n9'].map((u) => [u, m.userVector(m.userIndex.get(u)!).slice()]));
  const items = m.itemVectors.slice();
  await a.close();
  return { users, items, position: 120 };
}

test('a restart of the same version loads the snapshot written on close and replays only the log after it', async () => {
  const { repo, input } = repoWith('sn');
  const at = await firstRun(repo, 'sn');
  const file = snapshotPath(join(repo, 'sn', 'online-state'), 1);
  assert.ok(existsSync(file), 'written on close');
  await appendToLog(join(repo, 'sn', 'interactions'), laterBatch); // as if acknowledged after the snapshot, then a crash
  const b = await testServer(repo, 'sn', { online: quiet });
  try {
    const m = b.holder.model!;
    assert.equal(m.appliedPosition, 150);
    assert.equal(await metric(b, 'promptmm_log_replayed_total'), 30, 'only the records after the snapshot were replayed');
    for (const [u, v] of at.users) assert.deepEqual(m.userVector(m.userIndex.get(u)!), v, `${u}: the vector as it was at close`);
    assert.deepEqual(m.itemVectors, at.items, 'item vectors as the round left them');
    assert.notDeepEqual(m.itemVectors, input.itemEmbeddings, '(the round had moved them)');
    for (const x of [...firstBatch, ...laterBatch]) assert.ok(m.isSeen(m.userIndex.get(x.user)!, m.itemIndex.get(x.item)!), `${x.user}/${x.item} seen`);
    assert.equal(await metric(b, 'promptmm_online_users'), 5 + 15, 'online users n* from the snapshot, later* from the log');
    assert.equal(await metric(b, 'promptmm_online_snapshot_position'), 120);
    // the ANN index was brought to the moved item vectors
    for (const u of ['u1', 'u7', 'n3']) {
      const ann = (await b.app.inject({ url: `/recommend?user=${u}&k=10&retrieval=ann` })).json().items;
      const exact = (await b.app.inject({ url: `/recommend?user=${u}&k=10&retrieval=exact` })).json().items;
      assert.deepEqual(ann.map((x: { item: string }) => x.item), exact.map((x: { item: string }) => x.item), `${u}: ann = exact`);
    }
  } finally {
    await b.close();
  }
});

test('a new version does not use the old version\'s snapshot: it replays from its own manifest\'s position', async () => {
  const { repo } = repoWith('nv');
  await firstRun(repo, 'nv');
  await appendToLog(join(repo, 'nv', 'interactions'), laterBatch);
  const v2 = smallBundle('nv', 2);
  exportBundle({ ...v2, logPosition: 100 }, { repo, hnsw: HNSW });
  const b = await testServer(repo, 'nv', { online: quiet });
  try {
    const m = b.holder.model!;
    assert.equal(m.version, 2);
    assert.equal(m.appliedPosition, 150);
    assert.equal(await metric(b, 'promptmm_log_replayed_total'), 50, 'from its logPosition 100');
    assert.deepEqual(m.itemVectors, v2.itemEmbeddings, 'no item vector of version 1\'s rounds');
    // Records up to 100 count as absorbed by version 2's training: not replayed on top of its bundle.
    const inBundle = (u: string, i: string) => {
      const r = Number(u.slice(1));
      return v2.seen.indices.subarray(v2.seen.indptr[r], v2.seen.indptr[r + 1]).includes(Number(i.slice(1)));
    };
    const later = new Set([...firstBatch.slice(100), ...laterBatch].map((x) => `${x.user}/${x.item}`));
    const absorbedOnly = firstBatch.slice(0, 100).filter((x) => x.user.startsWith('u') && !inBundle(x.user, x.item) && !later.has(`${x.user}/${x.item}`));
    assert.ok(absorbedOnly.length > 50);
    for (const x of absorbedOnly) assert.ok(!m.isSeen(m.userIndex.get(x.user)!, m.itemIndex.get(x.item)!), `${x.user}/${x.item} (position ≤ 100) not replayed`);
    for (const x of [...firstBatch.slice(100), ...laterBatch]) assert.ok(m.isSeen(m.userIndex.get(x.user)!, m.itemIndex.get(x.item)!), `${x.user}/${x.item} replayed`);
  } finally {
    await b.close();
  }
  const dir = join(repo, 'nv', 'online-state');
  assert.deepEqual(readdirSync(dir), ['v2.snapshot'], 'version 1\'s snapshot removed once version 2\'s was written');
});

test('a damaged snapshot is not used: the log replays from the bundle\'s position and nothing is lost', async () => {
  const { repo } = repoWith('dm');
  await firstRun(repo, 'dm');
  const file = snapshotPath(join(repo, 'dm', 'online-state'), 1);
  const bytes = readFileSync(file);
  bytes[bytes.length - 5] ^= 0x40;
  writeFileSync(file, bytes);
  await appendToLog(join(repo, 'dm', 'interactions'), laterBatch);
  const b = await testServer(repo, 'dm', { online: quiet });
  try {
    const m = b.holder.model!;
    assert.equal(await metric(b, 'promptmm_log_replayed_total'), 150, 'the whole log');
    for (const x of [...firstBatch, ...laterBatch]) assert.ok(m.isSeen(m.userIndex.get(x.user)!, m.itemIndex.get(x.item)!), `${x.user}/${x.item} seen`);
  } finally {
    await b.close();
  }
});

test('snapshots are written every N records, off the request, and counted', async () => {
  const { repo } = repoWith('pe');
  const s = await testServer(repo, 'pe', { online: { ...quiet, snapshotEvery: 50 } });
  try {
    await post(s, firstBatch.slice(0, 30));
    await s.online.snapshotsSettled();
    assert.ok(!existsSync(snapshotPath(join(repo, 'pe', 'online-state'), 1)), 'not yet: 30 < 50');
    await post(s, firstBatch.slice(30, 60));
    await s.online.snapshotsSettled();
    assert.ok(existsSync(snapshotPath(join(repo, 'pe', 'online-state'), 1)));
    assert.equal(await metric(s, 'promptmm_online_snapshot_position'), 60);
    assert.match((await s.app.inject({ url: '/metrics' })).body, /promptmm_online_snapshots_total\{result="ok"\} 1/);
  } finally {
    await s.close();
  }
});

test('the snapshot file: framing, checksum and fit are checked before anything is loaded', async () => {
  const { repo } = repoWith('fmt');
  const s = await testServer(repo, 'fmt', { online: quiet });
  try {
    await post(s, firstBatch);
    const m = s.holder.model!;
    const logDir = (s.online.log as InteractionLog).dir;
    const st = new VersionState(m, 0);
    st.userMoved(1);
    const buf = encodeSnapshot(st, logDir);
    const snap = decodeSnapshot(buf, 'x');
    assert.equal(snap.header.position, 120);
    assert.equal(checkSnapshot(snap, m, logDir, 120), null);
    assert.match(checkSnapshot(snap, m, logDir, 100)!, /past the log's end/);
    assert.match(checkSnapshot(snap, m, join(logDir, 'elsewhere'), 120)!, /of the log in/);
    assert.match(checkSnapshot({ ...snap, header: { ...snap.header, bundle: 'other' } }, m, logDir, 120)!, /another bundle/);
    assert.match(checkSnapshot({ ...snap, header: { ...snap.header, version: 9 } }, m, logDir, 120)!, /version 9/);
    assert.throws(() => decodeSnapshot(buf.subarray(0, buf.length - 4), 'x'), SnapshotError);
    const flipped = Buffer.from(buf);
    flipped[flipped.length - 1] ^= 1;
    assert.throws(() => decodeSnapshot(flipped, 'x'), /checksum mismatch/);
    assert.throws(() => decodeSnapshot(Buffer.from('not a snapshot at all'), 'x'), /not an online-state snapshot/);
    const rows = decodeSnapshot(buf, 'x');
    rows.sections.userRows[0] = 10_000;
    assert.match(checkSnapshot(rows, m, logDir, 120)!, /bad user rows/);
  } finally {
    await s.close();
  }
});

test('a snapshot copied in slices while interactions arrive is the state at the one position it records', async () => {
  const { repo } = repoWith('sl');
  const s = await testServer(repo, 'sl', { online: { ...quiet, maxOnlineUsers: 8 } });
  try {
    await post(s, firstBatch);
    await s.online.round(); // item vectors moved: copied in slices too
    const m = s.holder.model!;
    const st = s.online.stateOf(m);
    // The state at each position the capture could end at, recorded before each write between its slices.
    const states = new Map<number, { vectors: Float32Array; seen: Map<number, number[]>; rows: Map<string, number> }>();
    let n = 0;
    const pause = async () => {
      states.set(m.appliedPosition, { vectors: m.userVectors.slice(), seen: new Map([...m.extraSeen].map(([r, set]) => [r, [...set].sort((a, b) => a - b)])), rows: new Map(m.userIndex) });
      n++;
      // bundle users, online users already held, and new ones (evicting, rows reused)
      const user = n % 3 === 0 ? `u${1 + (n % 40)}` : n % 3 === 1 ? `n${1 + 2 * (n % 5)}` : `fresh${n}`;
      assert.equal((await post(s, [{ user, item: `i${(n * 17) % 300}` }])).statusCode, 200);
    };
    const parts = await captureSnapshot(st, (s.online.log as InteractionLog).dir, pause, 5);
    assert.ok(n > 20, `${n} writes between slices`);
    const at = states.get(parts.header.position);
    assert.ok(at, `position ${parts.header.position} is one the capture could end at`);
    const d = m.dim;
    const sec = parts.sections;
    sec.userRows.forEach((r, k) => assert.deepEqual(sec.userVectors.subarray(k * d, (k + 1) * d), at.vectors.subarray(r * d, (r + 1) * d), `bundle row ${r}`));
    sec.seenRows.forEach((r, k) => assert.deepEqual([...sec.seenItems.subarray(sec.seenOffsets[k], sec.seenOffsets[k + 1])].sort((a, b) => a - b), at.seen.get(r), `seen of row ${r}`));
    sec.itemRows.forEach((i, k) => assert.deepEqual(sec.itemVectors.subarray(k * d, (k + 1) * d), m.itemVectors.subarray(i * d, (i + 1) * d), `item ${i}`));
    const online = [...at.rows].filter(([, r]) => r >= m.bundleUsers).map(([id]) => id);
    assert.deepEqual([...parts.header.onlineIds].sort(), online.sort(), 'the online users held at that position');
    parts.header.onlineIds.forEach((id, k) => {
      const r = at.rows.get(id)!;
      assert.deepEqual(sec.onlineVectors.subarray(k * d, (k + 1) * d), at.vectors.subarray(r * d, (r + 1) * d), `${id}'s vector`);
      assert.deepEqual([...sec.onlineSeenItems.subarray(sec.onlineSeenOffsets[k], sec.onlineSeenOffsets[k + 1])].sort((a, b) => a - b), at.seen.get(r), `${id}'s seen items`);
    });
  } finally {
    await s.close();
  }
});
