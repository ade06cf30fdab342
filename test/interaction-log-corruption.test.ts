/** Damage inside the interaction log: a torn tail is cut; damage before acknowledged records refuses to open, or is
 * skipped and quarantined with every position kept; the nightly merge reports the same error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { InteractionLog, LogCorruptError, type InteractionLogOptions } from '../repository/interaction-log.js';
import { mergeInteractionLog } from '../data/absorb-log.js';

const dir = () => mkdtempSync(join(tmpdir(), 'promptmm-logc-'));
// numeric ids: the nightly merge takes only row numbers
const rec = (n: number) => ({ user: String(n % 7), item: String(n), ts: n });
const quiet = { warn: () => {}, info: () => {}, error: () => {} } as never;

/** A log of records 1..n (record k is rec(k - 1)), written in groups of 10. */
async function filled(d: string, n: number, opts: InteractionLogOptions = {}): Promise<void> {
  const log = InteractionLog.open(d, opts);
  for (let k = 0; k < n; k += 10) await log.append(Array.from({ length: Math.min(10, n - k) }, (_, j) => rec(k + j)));
  await log.close();
}

const segments = (d: string) => readdirSync(d).filter((f) => f.startsWith('seg-')).sort().map((f) => join(d, f));

/** Byte offset of every record in a segment file, plus the file's length at the end. */
function offsets(file: string): number[] {
  const b = readFileSync(file);
  const out: number[] = [];
  for (let off = 0; off < b.length; off += 8 + b.readUInt32LE(off)) out.push(off);
  return [...out, b.length];
}

function poke(file: string, at: number, f: (byte: number) => number): void {
  const b = readFileSync(file);
  b[at] = f(b[at]);
  writeFileSync(file, b);
}
const flip = (file: string, at: number) => poke(file, at, (x) => x ^ 0x20);

/** Every file under `d` with its size. */
function sizes(d: string): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (p: string) => {
    for (const f of readdirSync(p)) {
      const q = join(p, f);
      if (statSync(q).isDirectory()) walk(q);
      else out[q] = statSync(q).size;
    }
  };
  walk(d);
  return out;
}

const positions = (log: InteractionLog) => log.read().map((e) => e.position);
const range = (from: number, to: number, but: number[] = []) => Array.from({ length: to - from + 1 }, (_, k) => from + k).filter((p) => !but.includes(p));

test('a flipped byte mid-segment refuses to open, naming segment, byte and position, and cuts nothing', async () => {
  const d = dir();
  await filled(d, 300);
  const [seg] = segments(d);
  const at = offsets(seg)[99]; // record 100
  flip(seg, at + 8 + 12);
  const before = sizes(d);
  for (let n = 0; n < 2; n++) {
    assert.throws(
      () => InteractionLog.open(d),
      (e: unknown) => {
        assert.ok(e instanceof LogCorruptError);
        assert.equal(e.offset, at);
        assert.equal(e.position, 100);
        assert.equal(resolve(e.segment), resolve(seg));
        assert.match(e.message, new RegExp(`^seg-000000000001\\.log byte ${at}, log position 100: interaction log damaged: checksum mismatch; 200 whole records follow it`));
        assert.match(e.message, /nothing was cut/);
        assert.match(e.message, /onCorrupt 'skip' .* skip log position 100,/);
        return true;
      },
    );
  }
  assert.deepEqual(sizes(d), before, 'no file changed, none added');
});

test('onCorrupt skip: exactly the damaged record is skipped and quarantined, every position kept, none reused', async () => {
  const d = dir();
  await filled(d, 300);
  const [seg] = segments(d);
  const offs = offsets(seg);
  const damaged = Buffer.from(readFileSync(seg).subarray(offs[99], offs[100]));
  flip(seg, offs[99] + 8 + 12);
  damaged[8 + 12] ^= 0x20;
  const warnings: { o: unknown; msg: string }[] = [];
  const log = InteractionLog.open(d, { onCorrupt: 'skip', log: { warn: (o: unknown, msg: string) => warnings.push({ o, msg }), info: () => {}, error: () => {} } as never });
  const entries = log.read();
  assert.deepEqual(entries.map((e) => e.position), range(1, 300, [100]));
  for (const e of entries) assert.deepEqual(e, { ...rec(e.position - 1), position: e.position });
  assert.equal(log.skippedRecords, 1);
  assert.equal(log.skipped.length, 1);
  const q = log.skipped[0];
  assert.deepEqual([q.offset, q.bytes, q.positions], [offs[99], offs[100] - offs[99], [100, 100]]);
  assert.ok(q.quarantine && q.quarantine.startsWith(join(d, 'quarantine', 'seg-000000000001-')));
  assert.deepEqual(readFileSync(q.quarantine), damaged, 'the raw damaged bytes are kept');
  assert.equal(statSync(seg).size, offs[300], 'the segment is not cut');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0].msg, /skipped and quarantined/);
  assert.equal(log.position, 300);
  assert.equal(await log.append([rec(300)]), 301, 'the next append gets a fresh position');
  await log.close();

  // quarantined once, the decision holds: a default open skips the same bytes again (counted) and nothing else
  const again = InteractionLog.open(d);
  assert.equal(again.skippedRecords, 1);
  assert.deepEqual(positions(again), range(1, 301, [100]));
  assert.equal(await again.append([rec(301)]), 302);
  await again.close();
  // ...but not damage that differs from the quarantined copy
  flip(seg, offs[99] + 8 + 13);
  assert.throws(() => InteractionLog.open(d), /byte \d+, log position 100: .*checksum mismatch/);
});

test('a damaged length prefix, or damage over several records, resynchronises on the next whole record', async () => {
  const d = dir();
  await filled(d, 100);
  const [seg] = segments(d);
  const offs = offsets(seg);
  poke(seg, offs[49] + 2, () => 0xff); // record 50 claims some 16 MB
  const z = readFileSync(seg);
  z.fill(0, offs[19] + 3, offs[22] - 5); // records 20, 21 and 22 zeroed but for a few bytes at each end
  writeFileSync(seg, z);
  assert.throws(() => InteractionLog.open(d), /byte \d+, log position 20: interaction log damaged: checksum mismatch/);
  const log = InteractionLog.open(d, { onCorrupt: 'skip', log: quiet });
  assert.deepEqual(positions(log), range(1, 100, [20, 21, 22, 50]));
  assert.equal(log.skippedRecords, 4);
  assert.deepEqual(log.skipped.map((g) => g.positions), [[20, 22], [50, 50]]);
  assert.equal(readdirSync(join(d, 'quarantine')).length, 2);
  assert.equal(await log.append([rec(100)]), 101);
  await log.close();
});

test('a torn tail is still cut, also after a skipped region, and the next position follows the last whole record', async () => {
  const d = dir();
  await filled(d, 10);
  const [seg] = segments(d);
  const offs = offsets(seg);
  flip(seg, offs[8] + 8 + 12); // record 9: damaged, with record 10 whole after it
  appendFileSync(seg, Buffer.from([99, 0, 0, 0, 5])); // a crash mid-write
  assert.throws(() => InteractionLog.open(d), /log position 9: .*1 whole record follow it/);
  assert.equal(statSync(seg).size, offs[10] + 5, 'a refused open does not cut the tail either');
  const log = InteractionLog.open(d, { onCorrupt: 'skip', log: quiet });
  assert.equal(statSync(seg).size, offs[10], 'torn tail cut');
  assert.deepEqual(positions(log), range(1, 10, [9]));
  assert.equal(await log.append([rec(10)]), 11);
  await log.close();

  // the newest segment's last record failing its CRC with nothing after it is a torn tail (a crash mid-write), cut
  const e = dir();
  await filled(e, 10);
  const [s2] = segments(e);
  const o2 = offsets(s2);
  flip(s2, o2[9] + 8 + 12);
  const warnings: unknown[] = [];
  const log2 = InteractionLog.open(e, { log: { warn: (o: unknown) => warnings.push(o), info: () => {}, error: () => {} } as never });
  assert.equal(warnings.length, 1);
  assert.equal(statSync(s2).size, o2[9]);
  assert.equal(log2.skippedRecords, 0);
  assert.equal(existsSync(join(e, 'quarantine')), false);
  assert.equal(await log2.append([rec(9)]), 10);
  await log2.close();
});

test('damage in an older segment is refused the same way, and skipped with every position kept', async () => {
  const d = dir();
  await filled(d, 60, { segmentBytes: 300 });
  const segs = segments(d);
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  const offs = offsets(segs[0]);
  const n0 = offs.length - 1; // records in the first segment
  flip(segs[0], offs[1] + 8 + 12); // record 2, in the middle of the oldest segment
  const before = sizes(d);
  assert.throws(() => InteractionLog.open(d, { segmentBytes: 300 }), (e: unknown) => e instanceof LogCorruptError && e.position === 2 && /^seg-000000000001\.log byte \d+, log position 2: /.test(e.message));
  assert.deepEqual(sizes(d), before);
  const log = InteractionLog.open(d, { segmentBytes: 300, onCorrupt: 'skip', log: quiet });
  assert.deepEqual(positions(log), range(1, 60, [2]));
  await log.close();

  // the last record of an older segment: nothing whole after it in that file, but a later segment exists, so not a torn tail
  const second = segs[1];
  const o1 = offsets(second);
  const last = n0 + o1.length - 1; // position of the second segment's last record
  flip(second, o1.at(-2)! + 8 + 12);
  assert.throws(() => InteractionLog.open(d, { segmentBytes: 300 }), new RegExp(`log position ${last}: .*older segment`));
  const log2 = InteractionLog.open(d, { segmentBytes: 300, onCorrupt: 'skip', log: quiet });
  assert.deepEqual(positions(log2), range(1, 60, [2, last]));
  assert.equal(statSync(second).size, o1.at(-1), 'not cut');
  assert.equal(log2.skippedRecords, 2);
  assert.equal(await log2.append([rec(60)]), 61);
  await log2.close();

  // records missing at the end of an older segment (cut off cleanly) are acknowledged records gone: refused, or skipped
  const third = segs[2];
  const o3 = offsets(third);
  const lastOfThird = last + o3.length - 1;
  truncateSync(third, o3.at(-2)!);
  assert.throws(() => InteractionLog.open(d, { segmentBytes: 300 }), new RegExp(`log position ${lastOfThird}: interaction log damaged: the segment ends at log position ${lastOfThird - 1}`));
  const log3 = InteractionLog.open(d, { segmentBytes: 300, onCorrupt: 'skip', log: quiet });
  assert.deepEqual(positions(log3), range(1, 61, [2, last, lastOfThird]));
  assert.equal(await log3.append([rec(61)]), 62);
  await log3.close();
});

test('records written without positions (older logs) are counted by their length prefixes, or refused when they cannot be', async () => {
  const old = (x: { user: string; item: string; ts: number }) => {
    const payload = Buffer.from(JSON.stringify({ u: x.user, i: x.item, ts: x.ts }));
    const h = Buffer.alloc(8);
    h.writeUInt32LE(payload.length, 0);
    h.writeUInt32LE(crc32(payload), 4);
    return Buffer.concat([h, payload]);
  };
  const d = dir();
  const seg = join(d, 'seg-000000000001.log');
  writeFileSync(seg, Buffer.concat(Array.from({ length: 10 }, (_, n) => old(rec(n)))));
  const offs = offsets(seg);
  flip(seg, offs[4] + 8 + 6);
  assert.throws(() => InteractionLog.open(d), /log position 5: .*checksum mismatch/);
  const log = InteractionLog.open(d, { onCorrupt: 'skip', log: quiet });
  assert.deepEqual(positions(log), range(1, 10, [5]));
  assert.equal(await log.append([rec(10)]), 11);
  await log.close();
  assert.deepEqual(positions(InteractionLog.open(d)), range(1, 11, [5]));

  poke(seg, offs[6], (x) => x + 3); // record 7's length is wrong: how many records the damage held cannot be told
  assert.throws(() => InteractionLog.open(d, { onCorrupt: 'skip' }), /log position 7: .*cannot be told/);
});

test('a new segment\'s folder entry is fsynced before its first record is acknowledged', async () => {
  const d = dir();
  const names = new Map<number, string>();
  const events: string[] = [];
  const { openSync, fsyncSync, fdatasyncSync, fdatasync } = fs;
  fs.openSync = ((p: fs.PathLike, ...rest: never[]) => {
    const fd = (openSync as (...a: unknown[]) => number)(p, ...rest);
    names.set(fd, resolve(String(p)));
    return fd;
  }) as typeof fs.openSync;
  fs.fsyncSync = ((fd: number) => (events.push(`fsync ${names.get(fd)}`), fsyncSync(fd))) as typeof fs.fsyncSync;
  fs.fdatasyncSync = ((fd: number) => (events.push(`fdatasync ${names.get(fd)}`), fdatasyncSync(fd))) as typeof fs.fdatasyncSync;
  fs.fdatasync = ((fd: number, cb: fs.NoParamCallback) => (events.push(`fdatasync ${names.get(fd)}`), fdatasync(fd, cb))) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  try {
    const log = InteractionLog.open(d, { segmentBytes: 100 });
    await log.append([rec(0), rec(1), rec(2)]);
    const mark = events.length;
    await log.append([rec(3)]); // the first segment is full: this goes to a new one
    await log.close();
    const fresh = resolve(segments(d)[1]);
    const after = events.slice(mark);
    assert.ok(after.includes(`fsync ${resolve(d)}`), after.join('\n'));
    assert.ok(after.indexOf(`fsync ${resolve(d)}`) < after.indexOf(`fdatasync ${fresh}`), 'the folder before the records in it');
  } finally {
    Object.assign(fs, { openSync, fsyncSync, fdatasyncSync, fdatasync });
    syncBuiltinESMExports();
  }
});

test('damage that appears after open makes read() throw instead of returning a silent gap', async () => {
  const d = dir();
  await filled(d, 30);
  const log = InteractionLog.open(d);
  const [seg] = segments(d);
  flip(seg, offsets(seg)[4] + 8 + 12);
  assert.throws(() => log.read(), /byte \d+, log position 5: .*since the log was opened/);
  await log.close();
});

test('the nightly merge reports the same error, changes nothing in the log, and leaves a live tail alone', async () => {
  const root = dir();
  const data = join(root, 'data');
  mkdirSync(data);
  // the log's users (0..6) and items (0..49) are all rows of this dataset
  const train = Array.from({ length: 50 }, (_, i) => `${i % 7}\t${i}\t0`);
  writeFileSync(join(data, 'x.inter'), ['userID\titemID\tx_label', ...train, '0\t1\t1', '0\t2\t2'].join('\n') + '\n');
  const logDir = join(root, 'log');
  await filled(logDir, 50);
  const [seg] = segments(logDir);
  const offs = offsets(seg);
  flip(seg, offs[19] + 8 + 12);
  appendFileSync(seg, Buffer.from([99, 0, 0, 0, 5])); // a write in progress, as a live server's log may show
  const before = sizes(logDir);
  let opened = '';
  try {
    InteractionLog.open(logDir, { readOnly: true });
  } catch (e) {
    opened = (e as Error).message;
  }
  assert.match(opened, /^seg-000000000001\.log byte \d+, log position 20: /);
  assert.throws(() => mergeInteractionLog(data, logDir, join(root, 'out')), (e: unknown) => e instanceof LogCorruptError && e.message === opened);
  assert.deepEqual(sizes(logDir), before, 'no truncation, no quarantine copy');

  const a = mergeInteractionLog(data, logDir, join(root, 'out'), { onCorrupt: 'skip' });
  assert.deepEqual(a, { logPosition: 50, logDir: resolve(logDir), interactions: 49, newUsers: 0, newItems: 0, unknownItems: 0, dislikes: 0, deletedItems: [], dislikePairs: [], featureMismatches: 0 });
  assert.deepEqual(sizes(logDir), before, 'a read-only skip writes nothing either');
  const rows = readFileSync(join(root, 'out', 'x.inter'), 'utf8').trim().split('\n');
  assert.equal(rows.length, 1 + 52 + 49);

  // once the server has quarantined it (onCorrupt skip), the default merge goes through
  await InteractionLog.open(logDir, { onCorrupt: 'skip', log: quiet }).close();
  assert.equal(mergeInteractionLog(data, logDir, join(root, 'out2')).interactions, 49);
});

test('a read-only reader beside a live log: segments archived meanwhile are read once, never missed', async () => {
  const d = dir();
  await filled(d, 40, { segmentBytes: 300 });
  const segs = segments(d);
  mkdirSync(join(d, 'archive'));
  // moved between the reader's two listings: it shows in both
  writeFileSync(join(d, 'archive', 'seg-000000000001.log'), readFileSync(segs[0]));
  const snap = InteractionLog.open(d, { readOnly: true });
  // moved after the reader opened
  renameSync(segs[1], join(d, 'archive', basename(segs[1])));
  assert.deepEqual(positions(snap), range(1, 40));
  assert.equal(snap.position, 40);
  await assert.rejects(snap.append([rec(40)]), /read-only/);
});
