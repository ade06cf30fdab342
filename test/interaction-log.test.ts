import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { appendFileSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InteractionLog } from '../repository/interaction-log.js';

const dir = () => mkdtempSync(join(tmpdir(), 'promptmm-log-'));

test('appends are durable, positioned in order, group-committed, and read back after reopening', async () => {
  const d = dir();
  const log = InteractionLog.open(d);
  const results = await Promise.all(Array.from({ length: 50 }, (_, n) => log.append([{ user: `u${n}`, item: `i${n}`, ts: n }, { user: `u${n}`, item: `j${n}`, ts: n }])));
  assert.deepEqual(results, Array.from({ length: 50 }, (_, n) => 2 * n + 2));
  assert.equal(log.position, 100);
  await log.close();
  const again = InteractionLog.open(d);
  const all = again.read();
  assert.equal(all.length, 100);
  assert.deepEqual(all[3], { user: 'u1', item: 'j1', ts: 1, position: 4 });
  assert.deepEqual(again.read(98).map((e) => e.position), [99, 100]);
  assert.equal(await again.append([{ user: 'x', item: 'y', ts: 0 }]), 101);
  await again.close();
});

test('a torn or corrupt tail is reported and cut off, never a crash', async () => {
  const d = dir();
  const log = InteractionLog.open(d);
  await log.append([{ user: 'a', item: 'b', ts: 1 }, { user: 'c', item: 'd', ts: 2 }]);
  await log.close();
  const seg = join(d, readdirSync(d)[0]);
  const good = statSync(seg).size;
  appendFileSync(seg, Buffer.from([20, 0, 0, 0, 1, 2, 3, 4, 0x7b])); // header promising 20 bytes, 1 present
  const warnings: unknown[] = [];
  const fake = { warn: (o: unknown) => warnings.push(o), info: () => {}, error: () => {} } as never;
  const reopened = InteractionLog.open(d, { log: fake });
  assert.equal(reopened.read().length, 2);
  assert.equal(warnings.length, 1);
  assert.equal(statSync(seg).size, good, 'tail truncated');
  assert.equal(await reopened.append([{ user: 'e', item: 'f', ts: 3 }]), 3);
  await reopened.close();
  const again = InteractionLog.open(d);
  assert.deepEqual(again.read().map((e) => e.item), ['b', 'd', 'f']);
  await again.close();
});

test('segments roll over; compaction archives only fully absorbed ones and loses nothing', async () => {
  const d = dir();
  const log = InteractionLog.open(d, { segmentBytes: 200 });
  for (let n = 0; n < 20; n++) await log.append([{ user: `u${n}`, item: `i${n}`, ts: n }]);
  const segs = readdirSync(d).length;
  assert.ok(segs > 3, `${segs} segments`);
  assert.equal(log.compact(0), 0);
  const moved = log.compact(10);
  assert.ok(moved >= 1);
  assert.ok(readdirSync(join(d, 'archive')).length === moved);
  assert.ok(readdirSync(d).filter((f) => f.startsWith('seg-')).length === segs - moved);
  assert.deepEqual(log.read().map((e) => e.position), Array.from({ length: 20 }, (_, i) => i + 1), 'archived records still read');
  await log.close();
  const again = InteractionLog.open(d, { segmentBytes: 200 });
  assert.equal(again.read().length, 20);
  assert.equal(await again.append([{ user: 'x', item: 'y', ts: 0 }]), 21);
  await again.close();
});

test('a write that fails is refused, leaves no bytes behind, and the log stops accepting until reopened', async () => {
  const d = dir();
  const log = InteractionLog.open(d);
  assert.equal(await log.append([{ user: 'a', item: 'b', ts: 1 }]), 1);
  // Pull the file out from under the log: the next write fails (EBADF), and so does the repair.
  const internals = log as unknown as { fd: number | null };
  const { closeSync } = await import('node:fs');
  closeSync(internals.fd!);
  internals.fd = 2 ** 30;
  await assert.rejects(log.append([{ user: 'c', item: 'd', ts: 2 }]), /EBADF/);
  await assert.rejects(log.append([{ user: 'e', item: 'f', ts: 3 }]), /not writable/);
  assert.equal(log.position, 1);
  const again = InteractionLog.open(d);
  assert.deepEqual(again.read().map((e) => e.item), ['b']);
  assert.equal(await again.append([{ user: 'g', item: 'h', ts: 4 }]), 2);
  await again.close();
});

test('appends of one event-loop turn are flushed together, in order; nothing is read or counted before it is durable', async () => {
  const log = InteractionLog.open(dir());
  const first = log.append([{ user: 'a', item: 'i0', ts: 0 }]); // flushed at the end of this turn
  assert.equal(log.position, 0);
  assert.equal(log.read().length, 0);
  const rest = Array.from({ length: 20 }, (_, n) => log.append([{ user: 'a', item: `i${n + 1}`, ts: n + 1 }]));
  assert.deepEqual(await Promise.all([first, ...rest]), Array.from({ length: 21 }, (_, n) => n + 1));
  assert.equal(log.position, 21);
  assert.deepEqual(log.read(19).map((e) => e.item), ['i19', 'i20']);
  await log.close();
});

test('a commit window groups appends of later turns into one flush; without one each turn is flushed on its own', async () => {
  for (const [window, grouped] of [[0, false], [30, true]] as const) {
    let flushes = 0;
    await withFdatasync(
      (fd, cb, real) => (flushes++, real(fd, cb)),
      async () => {
        const log = InteractionLog.open(dir(), { commitWindowMs: window });
        let firstDone = false;
        const first = log.append([{ user: 'a', item: 'i0', ts: 0 }]).then((p) => ((firstDone = true), p));
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setImmediate(r));
        // Two turns later the per-turn flush has started (its fdatasync on the thread pool); the window still holds it.
        assert.equal(flushes, grouped ? 0 : 1, `window ${window} ms`);
        if (!grouped) await first;
        const second = log.append([{ user: 'a', item: 'i1', ts: 1 }]);
        assert.equal(firstDone, !grouped);
        assert.deepEqual(await Promise.all([first, second]), [1, 2]);
        assert.equal(flushes, grouped ? 1 : 2, `window ${window} ms: one group or two`);
        assert.deepEqual(log.read().map((e) => e.item), ['i0', 'i1']);
        await log.close();
      },
    );
  }
});

/** Runs fn with fs.fdatasync replaced by `fake` (the log's flush calls it; its repairs use fdatasyncSync). */
async function withFdatasync(fake: (fd: number, cb: fs.NoParamCallback, real: typeof fs.fdatasync) => void, fn: () => Promise<void>): Promise<void> {
  const real = fs.fdatasync;
  fs.fdatasync = ((fd: number, cb: fs.NoParamCallback) => fake(fd, cb, real)) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    fs.fdatasync = real;
    syncBuiltinESMExports();
  }
}

test('appends during a flush in flight form the next group: acknowledged after it, never counted before they are durable', async () => {
  const held: (() => void)[] = [];
  await withFdatasync(
    (fd, cb, real) => held.push(() => real(fd, cb)),
    async () => {
      const log = InteractionLog.open(dir());
      const first = log.append([{ user: 'a', item: 'i0', ts: 0 }]);
      await new Promise((r) => setImmediate(r)); // the first group is written, its fdatasync held
      await new Promise((r) => setImmediate(r));
      assert.equal(held.length, 1);
      const second = log.append([{ user: 'a', item: 'i1', ts: 1 }]);
      let secondDone = false;
      void second.then(() => (secondDone = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(held.length, 1, 'one flush in flight at a time');
      assert.equal(log.position, 0, 'nothing durable yet');
      assert.equal(log.read().length, 0);
      held.shift()!();
      assert.equal(await first, 1);
      assert.equal(log.position, 1);
      assert.equal(secondDone, false);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(held.length, 1, 'the second group is flushed after the first');
      held.shift()!();
      assert.equal(await second, 2);
      assert.deepEqual(log.read().map((e) => e.item), ['i0', 'i1']);
      await log.close();
    },
  );
});

test('a failed fdatasync fails its group and the appends queued behind it; positions roll back and nothing is left behind', async () => {
  const d = dir();
  let fail = false;
  const held: (() => void)[] = [];
  await withFdatasync(
    (fd, cb, real) => held.push(() => (fail ? cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })) : real(fd, cb))),
    async () => {
      const log = InteractionLog.open(d);
      const ok = log.append([{ user: 'a', item: 'i0', ts: 0 }]);
      await new Promise((r) => setTimeout(r, 5));
      held.shift()!();
      assert.equal(await ok, 1);
      fail = true;
      const lost = log.append([{ user: 'a', item: 'i1', ts: 1 }]);
      await new Promise((r) => setTimeout(r, 5));
      const behind = log.append([{ user: 'a', item: 'i2', ts: 2 }]); // queued while the failing flush is in flight
      held.shift()!();
      await assert.rejects(lost, /EIO/);
      await assert.rejects(behind, /EIO/);
      assert.equal(log.position, 1);
      fail = false;
      const next = log.append([{ user: 'a', item: 'i3', ts: 3 }]);
      await new Promise((r) => setTimeout(r, 5));
      held.shift()!();
      assert.equal(await next, 2, 'the failed positions are taken again');
      await log.close();
    },
  );
  assert.deepEqual(InteractionLog.open(d).read().map((e) => [e.position, e.item]), [[1, 'i0'], [2, 'i3']]);
});
