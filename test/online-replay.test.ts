/** Bringing a version up to date with a long log: replay in slices while the old version serves, nothing acknowledged lost at the swap, compaction, shutdown mid-replay. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { HNSW, repoWith, smallBundle, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };
type Server = Awaited<ReturnType<typeof testServer>>;

/** `n` records of bundle users and items, appended to the log before a server opens it. */
async function writeLog(dir: string, n: number, segmentBytes?: number): Promise<void> {
  const log = InteractionLog.open(dir, { segmentBytes });
  const batch = segmentBytes ? 10 : 100; // a segment rolls over between flushes
  for (let k = 0; k < n; k += batch) {
    await log.append(Array.from({ length: Math.min(batch, n - k) }, (_, j) => ({ user: `u${1 + ((k + j) % 199)}`, item: `i${((k + j) * 7) % 300}`, ts: k + j })));
  }
  await log.close();
}

const post = (s: Server, user: string, item: string) => s.app.inject({ method: 'POST', url: '/interactions', headers: auth, payload: { interactions: [{ user, item }] } });
const metric = async (s: Server, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec((await s.app.inject({ url: '/metrics' })).body)?.[1]);

test('a swap replays the log in slices while the old version keeps answering reads and writes; what was acknowledged meanwhile is in the new version', async () => {
  const { repo } = repoWith('sw');
  await writeLog(join(repo, 'sw', 'interactions'), 3000);
  const s = await testServer(repo, 'sw', { online: { roundEvery: 0, roundSeconds: 0, replaySlice: 100, snapshotEvery: 0 } });
  try {
    assert.equal(s.holder.model!.appliedPosition, 3000, 'the first version replayed the log on start');
    exportBundle(smallBundle('sw', 2), { repo, hnsw: HNSW }); // version 2 absorbed nothing: the whole log replays into it
    let slices = 0;
    let swapped = false;
    const during: Promise<void>[] = [];
    const served: number[] = [];
    const acked: string[] = [];
    s.online.onReplaySlice = (m) => {
      if (m.version !== 2 || slices++ % 5) return;
      during.push(
        (async () => {
          const user = `during-${slices}`;
          const w = await post(s, user, 'i5');
          assert.equal(w.statusCode, 200, w.body);
          const r = await s.app.inject({ url: '/recommend?user=u3&k=5' });
          if (!swapped) {
            acked.push(user);
            served.push(r.json().model_version);
          }
        })(),
      );
    };
    const r = await s.reloader.reload();
    swapped = true;
    await Promise.all(during);
    assert.equal(r.version, 2);
    assert.ok(slices >= 30, `replayed in slices (${slices})`);
    assert.ok(served.length >= 3, `requests answered while the new version was being prepared (${served.length})`);
    assert.ok(served.every((v) => v === 1), 'by the old version');
    const m = s.holder.model!;
    assert.equal(m.appliedPosition, s.online.log.position, 'the new version has every durable record');
    for (const user of acked) assert.ok(m.isSeen(m.userIndex.get(user)!, m.itemIndex.get('i5')!), `${user}, acknowledged during the replay, is in the new version`);
  } finally {
    await s.close();
  }
});

test('no acknowledged interaction falls between the replay and the swap (writers throughout)', async () => {
  const { repo } = repoWith('gap');
  await writeLog(join(repo, 'gap', 'interactions'), 2000);
  const s = await testServer(repo, 'gap', { online: { roundEvery: 0, roundSeconds: 0, replaySlice: 50, snapshotEvery: 0 } });
  try {
    exportBundle(smallBundle('gap', 3), { repo, hnsw: HNSW });
    const acked: { user: string; item: string }[] = [];
    let stop = false;
    let after = 0;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let n = 0; !stop || after < 20; n++) {
        if (stop) after++;
        const x = { user: `w${w}-${n}`, item: `i${(w * 31 + n) % 300}` };
        const r = await post(s, x.user, x.item);
        assert.equal(r.statusCode, 200, r.body);
        acked.push(x);
      }
    });
    assert.equal((await s.reloader.reload()).version, 2);
    stop = true;
    await Promise.all(writers);
    const m = s.holder.model!;
    assert.equal(m.version, 2);
    assert.ok(acked.length > 40, `${acked.length} acknowledged`);
    const missing = acked.filter((x) => !m.isSeen(m.userIndex.get(x.user) ?? -1, m.itemIndex.get(x.item)!));
    assert.deepEqual(missing, [], 'every acknowledged interaction is in the version served after the swap');
    assert.equal(m.appliedPosition, s.online.log.position);
  } finally {
    await s.close();
  }
});

test('shutting down during a replay does not wait for it, and the version is not marked refused', async () => {
  const { repo } = repoWith('stop');
  await writeLog(join(repo, 'stop', 'interactions'), 2000);
  const s = await testServer(repo, 'stop', { online: { roundEvery: 0, roundSeconds: 0, replaySlice: 20, snapshotEvery: 0 } });
  exportBundle(smallBundle('stop', 2), { repo, hnsw: HNSW });
  let closing: Promise<unknown> | null = null;
  let slices = 0;
  s.online.onReplaySlice = (m) => {
    if (m.version !== 2) return;
    slices++;
    closing ??= s.close();
  };
  const r = await s.reloader.reload();
  await closing;
  assert.ok(closing, 'the replay had begun');
  assert.equal(r.changed, false);
  assert.deepEqual(r.refused, []);
  assert.ok(slices < 2000 / 20, `stopped early (${slices} slices)`);
  assert.equal(s.holder.model, null, 'closed');
});

test('compaction archives the segments every version absorbed; a version that absorbed less still replays them', async () => {
  const { repo } = repoWith('cmp', 0);
  const logDir = join(repo, 'cmp', 'interactions');
  await writeLog(logDir, 300, 2000); // ~40 records a segment
  const segments = () => readdirSync(logDir).filter((f) => f.startsWith('seg-'));
  const before = segments().length;
  assert.ok(before >= 5, `${before} segments`);
  exportBundle({ ...smallBundle('cmp'), logPosition: 200 }, { repo, hnsw: HNSW });
  const s = await testServer(repo, 'cmp', { online: { roundEvery: 0, roundSeconds: 0, replaySlice: 30 } });
  try {
    assert.equal(s.holder.model!.appliedPosition, 300);
    const archived = readdirSync(join(logDir, 'archive'));
    assert.ok(archived.length >= 3 && segments().length === before - archived.length, `${archived.length} archived`);
    assert.equal(await metric(s, 'promptmm_log_replayed_total'), 100, 'only what the bundle had not absorbed');
    exportBundle(smallBundle('cmp', 2), { repo, hnsw: HNSW }); // absorbed nothing
    assert.equal((await s.reloader.reload()).version, 2);
    const m = s.holder.model!;
    assert.equal(m.appliedPosition, 300);
    assert.equal(await metric(s, 'promptmm_log_replayed_total'), 400, 'the archived records too');
    assert.ok(m.isSeen(m.userIndex.get('u1')!, m.itemIndex.get('i0')!), 'position 1 (archived) is applied');
    assert.equal(readdirSync(join(logDir, 'archive')).length, archived.length, 'nothing more archived: version 2 absorbed nothing');
    assert.ok(existsSync(logDir));
  } finally {
    await s.close();
  }
});
