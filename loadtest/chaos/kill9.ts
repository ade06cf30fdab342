/**
 * kill -9 under 4 writing clients: every acknowledged record must be in the log after the
 * restart, at the position its reply gave, and no acknowledged position may be handed out again.
 */
import { join } from 'node:path';
import { Rng } from '../../core/rng.js';
import { InteractionLog, type LogEntry } from '../../repository/interaction-log.js';
import { auth, baseArgs, exitOf, exportTinyBundle, json, median, problem, request, row, sleep, startServer, within, type ChaosRow, type Resources, type Started } from './common.js';

export interface Kill9Options {
  trials: number;
  seed: number;
  writers?: number;
  /** the kill comes this many ms after the trial's first acknowledged write, drawn uniformly */
  delayMs?: [number, number];
}

interface Acked {
  user: string;
  item: string;
  ts: number;
}

type InteractionsReply = { accepted: number; rejected: unknown[]; log_position: number };

export async function kill9Scenario(res: Resources, o: Kill9Options): Promise<ChaosRow> {
  const r = row('kill -9, 4 writers');
  const writers = o.writers ?? 4;
  const [dMin, dMax] = o.delayMs ?? [50, 600];
  const name = 'chaos';
  const repo = res.tempDir('kill9');
  const input = exportTinyBundle(repo, name);
  const logDir = join(repo, name, 'interactions');
  const args = baseArgs(repo, name);
  /** every acknowledged record by its position, over all trials */
  const acked = new Map<number, Acked>();
  const lost = new Set<number>();
  const restartMs: number[] = [];
  let reused = 0;
  let unackedInLog = 0;
  let other4xx = 0;
  let logEnd = 0;

  const first = await startServer(res, args);
  if (!first.ok) {
    problem(r, `the server did not start (${first.why}): ${first.stderr.slice(-300)}`);
    return r;
  }
  let server: Started = first;

  for (let trial = 0; trial < o.trials; trial++) {
    r.trials++;
    const rng = new Rng(o.seed * 1_000_003 + trial);
    const agent = res.agent(writers);
    let stop = false;
    let firstAck: () => void = () => {};
    const acking = new Promise<void>((r) => (firstAck = r));
    const writer = async (w: number) => {
      const wr = new Rng(o.seed * 7919 + trial * 31 + w);
      while (!stop) {
        const n = 1 + wr.int(4);
        const batch = Array.from({ length: n }, () => ({ user: input.ids.users[wr.int(input.nUsers)], item: input.ids.items[wr.int(input.nItems)], ts: Date.now() }));
        const out = await request(server.url, { method: 'POST', path: '/interactions', body: { interactions: batch }, headers: auth, agent, timeoutMs: 20_000 });
        if (out.kind === 'timeout') {
          r.hangs++;
          problem(r, `trial ${trial}: a POST /interactions got no answer within 20 s`);
          return;
        }
        if (out.kind !== 'answered') return; // the server died under it: that batch was not acknowledged
        if (out.status >= 500) {
          r.fiveXx++;
          problem(r, `trial ${trial}: POST /interactions answered ${out.status}: ${out.body.slice(0, 200)}`);
          continue;
        }
        if (out.status !== 200) {
          other4xx++;
          problem(r, `trial ${trial}: POST /interactions of known users and items answered ${out.status}: ${out.body.slice(0, 200)}`);
          continue;
        }
        const reply = json<InteractionsReply>(out);
        if (!reply || reply.accepted !== n || !Number.isSafeInteger(reply.log_position)) {
          problem(r, `trial ${trial}: a 200 without the ${n} accepted records and their log_position: ${out.body.slice(0, 200)}`);
          continue;
        }
        // A batch's records hold the positions up to log_position, in order.
        batch.forEach((x, i) => {
          const p = reply.log_position - n + 1 + i;
          if (acked.has(p) || p <= 0) {
            reused++;
            problem(r, `trial ${trial}: position ${p} acknowledged again (first for ${JSON.stringify(acked.get(p))}, now ${JSON.stringify(x)})`);
          } else acked.set(p, x);
        });
        r.acknowledged += n;
        firstAck();
      }
    };
    const running = Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
    // The delay counts from the trial's first acknowledgement, so that every kill lands among acknowledged writes.
    if ((await within(acking, 20_000, 'none')) === 'none') problem(r, `trial ${trial}: no write acknowledged within 20 s of the writers starting`);
    await sleep(dMin + rng.int(dMax - dMin + 1));
    const exited = exitOf(server.child);
    server.child.kill('SIGKILL');
    stop = true;
    if ((await within(running, 15_000, 'hung')) === 'hung') {
      r.hangs++;
      problem(r, `trial ${trial}: writers still waiting 15 s after the kill`);
    }
    res.dropAgent(agent);
    if ((await within(exited, 10_000, null)) === null) {
      r.hangs++;
      problem(r, `trial ${trial}: the killed server did not exit within 10 s`);
    }

    const next = await startServer(res, args);
    if (!next.ok) {
      if (next.why === 'timeout') r.hangs++;
      problem(r, `trial ${trial}: the restart on the same log failed (${next.why}): ${next.stderr.slice(-400)}`);
      break;
    }
    restartMs.push(next.ms);
    server = next;

    // The log as the restarted server left it (read-only: beside a live server).
    let entries: LogEntry[];
    try {
      entries = InteractionLog.open(logDir, { readOnly: true }).read(0);
    } catch (err) {
      problem(r, `trial ${trial}: the log cannot be read after the restart: ${(err as Error).message}`);
      break;
    }
    const byPos = new Map<number, LogEntry>();
    let prev = 0;
    for (const e of entries) {
      if (e.position <= prev) problem(r, `trial ${trial}: log position ${e.position} after ${prev} (not increasing)`);
      if (byPos.has(e.position)) problem(r, `trial ${trial}: log position ${e.position} held twice`);
      byPos.set(e.position, e);
      prev = e.position;
    }
    for (const [p, x] of acked) {
      const e = byPos.get(p);
      if (!e || e.user !== x.user || e.item !== x.item || e.ts !== x.ts) {
        if (!lost.has(p)) problem(r, `trial ${trial}: acknowledged ${JSON.stringify(x)} at position ${p}, the log has ${e ? JSON.stringify(e) : 'nothing'} there`);
        lost.add(p);
      }
    }
    for (const e of entries) if (e.position > logEnd && !acked.has(e.position)) unackedInLog++;
    logEnd = Math.max(logEnd, entries.at(-1)?.position ?? 0);
  }
  const last = exitOf(server.child);
  server.child.kill('SIGKILL');
  await within(last, 10_000, null);

  r.lost = lost.size;
  r.details = {
    reused,
    ...(other4xx ? { '4xx': other4xx } : {}),
    'unacked-in-log': unackedInLog,
    'log-records': logEnd,
    'restart-ms': restartMs.length ? `${Math.round(median(restartMs))}/${Math.round(Math.max(...restartMs))}` : '-',
  };
  if (r.acknowledged === 0) problem(r, 'no write was acknowledged: the trials tested nothing');
  return r;
}
