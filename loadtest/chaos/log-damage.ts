/**
 * Interaction-log damage: a torn tail must be cut (only it) and writing go on at the next position; a flipped byte
 * mid-segment must stop the server with a clear error, nothing cut, and a skip keep every other record at its position.
 */
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Rng } from '../../core/rng.js';
import { InteractionLog, type LoggedInteraction } from '../../repository/interaction-log.js';
import type { BundleInput } from '../../export/exporter.js';
import { auth, baseArgs, exportTinyBundle, json, killAndWait, problem, request, row, startServer, type ChaosRow, type Resources, type ServerFeatures } from './common.js';

export interface LogDamageOptions {
  trials: number;
  seed: number;
  features: ServerFeatures;
}

const NAME = 'chaos';

/** Writes `n` records through the log API in a few appends; returns them in position order (from 1). */
async function writeLog(dir: string, n: number, input: BundleInput, rng: Rng): Promise<LoggedInteraction[]> {
  const l = InteractionLog.open(dir);
  const all: LoggedInteraction[] = [];
  while (all.length < n) {
    const batch = Array.from({ length: Math.min(n - all.length, 1 + rng.int(8)) }, () => ({ user: input.ids.users[rng.int(input.nUsers)], item: input.ids.items[rng.int(input.nItems)], ts: 1_700_000_000_000 + rng.int(1e9) }));
    await l.append(batch);
    all.push(...batch);
  }
  await l.close();
  return all;
}

/** The one segment file of a fresh log folder. */
const segmentOf = (dir: string) => join(dir, readdirSync(dir).filter((f) => /^seg-\d+\.log$/.test(f)).sort()[0]);

/** [offset, bytes] of every record of a segment, by their length prefixes. */
function recordSpans(buf: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let off = 0; off + 8 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    out.push([off, 8 + len]);
    off += 8 + len;
  }
  return out;
}

/** How many of `acked` (position = index + 1) the log holds unchanged, but for the positions in `skipped`. */
function missing(dir: string, acked: LoggedInteraction[], skipped: Set<number>): { lost: number; firstLost: string | null } {
  const byPos = new Map(InteractionLog.open(dir, { readOnly: true }).read(0).map((e) => [e.position, e]));
  let lost = 0;
  let firstLost: string | null = null;
  acked.forEach((x, i) => {
    const p = i + 1;
    if (skipped.has(p)) return;
    const e = byPos.get(p);
    if (!e || e.user !== x.user || e.item !== x.item || e.ts !== x.ts) {
      lost++;
      firstLost ??= `position ${p}: acknowledged ${JSON.stringify(x)}, the log has ${e ? JSON.stringify(e) : 'nothing'}`;
    }
  });
  return { lost, firstLost };
}

/** Starts a server on `dir`, posts one interaction, returns its log_position (null on failure, with the reason), and kills the server. */
async function nextPosition(res: Resources, repo: string, dir: string, input: BundleInput, extra: string[], r: ChaosRow, what: string): Promise<{ position: number | null; stderr: string }> {
  const s = await startServer(res, [...baseArgs(repo, NAME), '--log-dir', dir, ...extra]);
  if (!s.ok) {
    if (s.why === 'timeout') r.hangs++;
    problem(r, `${what}: the server did not start (${s.why}): ${s.stderr.slice(-300)}`);
    return { position: null, stderr: s.stderr };
  }
  try {
    const out = await request(s.url, { method: 'POST', path: '/interactions', headers: auth, body: { interactions: [{ user: input.ids.users[1], item: input.ids.items[2], ts: 1_700_000_000_000 }] }, timeoutMs: 10_000 });
    if (out.kind === 'timeout') r.hangs++;
    if (out.kind === 'answered' && out.status >= 500) r.fiveXx++;
    const reply = json<{ log_position: number }>(out);
    if (out.kind !== 'answered' || out.status !== 200 || !reply) {
      problem(r, `${what}: POST /interactions did not succeed (${out.kind}${out.kind === 'answered' ? ` ${out.status} ${out.body.slice(0, 200)}` : ''})`);
      return { position: null, stderr: s.stderr() };
    }
    return { position: reply.log_position, stderr: s.stderr() };
  } finally {
    await killAndWait(s.child, 'SIGKILL', 10_000);
  }
}

export async function logDamageScenario(res: Resources, o: LogDamageOptions): Promise<ChaosRow[]> {
  const torn = row('log: torn tail');
  const flip = row('log: byte flipped mid-segment');
  const repo = res.tempDir('log');
  const input = exportTinyBundle(repo, NAME);
  let cutExact = 0;
  let goesOn = 0;
  let refused = 0;
  let clear = 0;
  let unchanged = 0;
  let quarantined = 0;
  let recovered = 0;
  let restarted = 0;

  for (let t = 0; t < o.trials; t++) {
    const rng = new Rng(o.seed * 65_537 + t);

    // Torn tail: a crash mid-write leaves part of the next record (or junk) after the last whole one.
    {
      torn.trials++;
      const dir = join(res.tempDir('log-torn'), 'interactions');
      const k = 20 + rng.int(60);
      const acked = await writeLog(dir, k, input, rng);
      torn.acknowledged += k;
      const seg = segmentOf(dir);
      const before = readFileSync(seg);
      const whole = before.length;
      let tail: Buffer;
      if (rng.int(2) === 0) {
        const payload = Buffer.from(JSON.stringify({ p: k + 1, u: input.ids.users[0], i: input.ids.items[0], ts: 1 }));
        const rec = Buffer.alloc(8 + payload.length);
        rec.writeUInt32LE(payload.length, 0);
        rec.writeUInt32LE(crc32(payload), 4);
        payload.copy(rec, 8);
        tail = rec.subarray(0, 1 + rng.int(rec.length - 1));
      } else tail = Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256)));
      appendFileSync(seg, tail);
      const { position } = await nextPosition(res, repo, dir, input, [], torn, `torn trial ${t}`);
      // The cut must be exactly the torn bytes: the acknowledged records before them stay whole.
      const size = statSync(seg).size;
      if (position !== null) {
        if (position === k + 1) goesOn++;
        else problem(torn, `torn trial ${t}: after ${k} records and a torn tail the next interaction got position ${position}, not ${k + 1}`);
        // What is there now: the records from before, unchanged, and the one new record after them.
        const now = readFileSync(seg);
        const added = recordSpans(now.subarray(whole));
        if (now.subarray(0, whole).equals(before) && added.length === 1 && added[0][1] === size - whole) cutExact++;
        else problem(torn, `torn trial ${t}: the segment was ${whole} bytes + ${tail.length} torn; after the restart and one append it is ${size} bytes, not the ${whole} before plus one record`);
      }
      const m = missing(dir, acked, new Set());
      torn.lost += m.lost;
      if (m.firstLost) problem(torn, `torn trial ${t}: ${m.lost} acknowledged records lost, first ${m.firstLost}`);
    }

    // A flipped byte inside a record that has whole records after it: acknowledged data, never a torn tail.
    {
      flip.trials++;
      const dir = join(res.tempDir('log-flip'), 'interactions');
      const k = 20 + rng.int(60);
      const acked = await writeLog(dir, k, input, rng);
      flip.acknowledged += k;
      const seg = segmentOf(dir);
      const buf = readFileSync(seg);
      const spans = recordSpans(buf);
      const victim = rng.int(k - 1); // 0-based record index; at least one whole record after it
      const [off, len] = spans[victim];
      const at = off + rng.int(len);
      buf[at] ^= 1 << rng.int(8);
      writeFileSync(seg, buf);
      const damaged = Buffer.from(buf);

      const s = await startServer(res, [...baseArgs(repo, NAME), '--log-dir', dir]);
      if (s.ok) {
        problem(flip, `flip trial ${t}: the server started on a log with a flipped byte at ${at} (record ${victim + 1} of ${k})`);
        await killAndWait(s.child, 'SIGKILL', 10_000);
      } else if (s.why === 'timeout') {
        flip.hangs++;
        problem(flip, `flip trial ${t}: the server neither started nor exited within 60 s on the damaged log`);
      } else {
        if (s.exit.code !== 0) refused++;
        else problem(flip, `flip trial ${t}: the server exited 0 on the damaged log`);
        const name = seg.split('/').at(-1)!;
        if (/interaction log damaged/.test(s.stderr) && s.stderr.includes(name) && /byte \d+/.test(s.stderr)) clear++;
        else problem(flip, `flip trial ${t}: the refusal does not name the damage (segment, byte): ${s.stderr.slice(-300)}`);
      }
      if (readFileSync(seg).equals(damaged)) unchanged++;
      else problem(flip, `flip trial ${t}: the refused start changed the segment (something was cut)`);

      // Skip: by the server's flag where it has one, else through the log API (what an operator's tool would do).
      const skipped = new Set<number>();
      let extra: string[] = [];
      if (o.features.logSkip) extra = [`${o.features.logSkip}=skip`];
      else {
        try {
          const l = InteractionLog.open(dir, { onCorrupt: 'skip' });
          for (const g of l.skipped) if (g.positions) for (let p = g.positions[0]; p <= g.positions[1]; p++) skipped.add(p);
          await l.close();
        } catch (err) {
          problem(flip, `flip trial ${t}: opening with onCorrupt 'skip' failed: ${(err as Error).message}`);
          continue;
        }
      }
      const { position } = await nextPosition(res, repo, dir, input, extra, flip, `flip trial ${t} after the skip`);
      if (position !== null) {
        restarted++;
        if (position !== k + 1) problem(flip, `flip trial ${t}: after the skip the next interaction got position ${position}, not ${k + 1} (positions reused)`);
      }
      if (o.features.logSkip) {
        for (const g of InteractionLog.open(dir, { readOnly: true }).skipped) if (g.positions) for (let p = g.positions[0]; p <= g.positions[1]; p++) skipped.add(p);
      }
      quarantined += skipped.size;
      if (skipped.size !== 1 || !skipped.has(victim + 1)) problem(flip, `flip trial ${t}: record ${victim + 1} was damaged, the skip quarantined positions [${[...skipped].join(', ')}]`);
      const m = missing(dir, acked, skipped);
      flip.lost += m.lost;
      if (m.lost === 0) recovered++;
      else problem(flip, `flip trial ${t}: ${m.lost} acknowledged records lost besides the damaged one, first ${m.firstLost}`);
    }
  }
  const n = o.trials;
  torn.details = { 'cut-exactly-the-tail': `${cutExact}/${n}`, 'next-position-ok': `${goesOn}/${n}` };
  flip.details = {
    'refused-start': `${refused}/${n}`,
    'clear-error': `${clear}/${n}`,
    'log-unchanged': `${unchanged}/${n}`,
    quarantined,
    'skip-via': o.features.logSkip ?? 'log-api',
    'all-others-kept': `${recovered}/${n}`,
    'restart-after-skip': `${restarted}/${n}`,
  };
  return [torn, flip];
}
