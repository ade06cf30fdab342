/**
 * SIGTERM under load: batches and keep-alive GETs in flight on accepted connections must each be answered whole (or
 * refused with a 503), never cut or reset, and the exit code must say whether the drain finished.
 */
import { Rng } from '../../core/rng.js';
import { baseArgs, durationArg, exitOf, exportTinyBundle, killAndWait, problem, request, row, sleep, startServer, tally, within, type ChaosRow, type Outcome, type Resources, type ServerFeatures } from './common.js';

export interface SigtermOptions {
  runs: number;
  seed: number;
  features: ServerFeatures;
  /** concurrent large batches (each `users` users, k) and keep-alive GETs in flight at the signal */
  batches?: number;
  users?: number;
  k?: number;
  gets?: number;
}

const NAME = 'chaos-big';
/** The server's own bound on a drain when it has no flag for it (server/server.ts). */
const DEFAULT_DRAIN_S = 10;

export async function sigtermScenario(res: Resources, o: SigtermOptions): Promise<ChaosRow> {
  const batches = o.batches ?? 4;
  let users = o.users ?? 256;
  const k = o.k ?? 1000;
  const gets = o.gets ?? 16;
  const r = row(`SIGTERM: ${batches} batches (k=${k}) + ${gets} keep-alive GETs`);
  const repo = res.tempDir('sigterm');
  // Big enough that k=1000 means 1000 items per user and a batch keeps the event loop busy.
  const input = exportTinyBundle(repo, NAME, { users: 512, items: 3000, dim: 32 });
  const drainS = o.features.drain ? 5 : DEFAULT_DRAIN_S;
  // No result cache: every user of every batch is searched, so the loop is busy when the signal comes.
  const extra = ['--cache-users', '0', ...(o.features.drain ? [durationArg(o.features.drain, drainS)] : [])];
  const waitMs = (drainS + 10) * 1000;
  const counts = { 'answered-503': 0, '4xx': 0, truncated: 0, reset: 0, refused: 0 };
  const exits: string[] = [];
  const exitMs: number[] = [];
  const delays: number[] = [];
  let noClose = 0;
  let probed = false;
  let unsettledAtSignal = 0;
  const lostBy = { batch: 0, get: 0 };

  for (let run = 0; run < o.runs; run++) {
    const rng = new Rng(o.seed * 104_729 + run);
    const s = await startServer(res, [...baseArgs(repo, NAME), ...extra]);
    if (!s.ok) {
      if (s.why === 'timeout') r.hangs++;
      problem(r, `run ${run}: the server did not start (${s.why}): ${s.stderr.slice(-300)}`);
      continue;
    }
    r.trials++;
    const big = res.agent(batches);
    const small = res.agent(gets);
    try {
      // Every connection is accepted and has answered once before the signal: what is sent on it later is in flight for sure.
      const warm = await Promise.all([...Array.from({ length: batches }, () => request(s.url, { path: '/healthz', agent: big, timeoutMs: 10_000 })), ...Array.from({ length: gets }, () => request(s.url, { path: '/healthz', agent: small, timeoutMs: 10_000 }))]);
      if (warm.some((w) => w.kind !== 'answered' || w.status !== 200)) {
        problem(r, `run ${run}: warming the connections failed: ${tally(warm.map((w) => w.kind))}`);
        continue;
      }
      const pick = () => input.ids.users[rng.int(input.nUsers)];
      // The largest legal batch: a request cost limit may refuse users × k (a 4xx), then fewer users.
      while (!probed) {
        const p = await request(s.url, { method: 'POST', path: '/recommend', body: { users: Array.from({ length: users }, pick), k }, agent: big, timeoutMs: 30_000 });
        if (p.kind === 'answered' && p.status >= 400 && p.status < 500 && users > 1) users = Math.ceil(users / 2);
        else probed = true;
      }
      let written = 0;
      let settled = 0;
      const onWritten = () => void written++;
      const track = (p: Promise<Outcome>, kind: 'batch' | 'get') => p.then((x) => (settled++, { x, kind }));
      const inFlight = [
        ...Array.from({ length: batches }, () => track(request(s.url, { method: 'POST', path: '/recommend', body: { users: Array.from({ length: users }, pick), k }, agent: big, timeoutMs: waitMs, onWritten }), 'batch')),
        ...Array.from({ length: gets }, () => track(request(s.url, { path: `/recommend?user=${pick()}&k=${k}`, agent: small, timeoutMs: waitMs, onWritten }), 'get')),
      ];
      for (const t0 = Date.now(); written < inFlight.length && Date.now() - t0 < 5000; ) await sleep(1);
      const delay = rng.int(300);
      delays.push(delay);
      await sleep(delay);
      const exited = exitOf(s.child);
      const tSig = performance.now();
      s.child.kill('SIGTERM');
      unsettledAtSignal += inFlight.length - settled;
      const outs = await Promise.all(inFlight);
      const exit = await within(exited, waitMs, null);
      if (exit === null) {
        r.hangs++;
        exits.push('none');
        problem(r, `run ${run}: the server had not exited ${waitMs / 1000} s after SIGTERM`);
      } else {
        exits.push(exit.signal ?? String(exit.code));
        exitMs.push(performance.now() - tSig);
      }
      let cut = 0;
      for (const { x, kind } of outs) {
        if (x.kind === 'answered') {
          if (x.status === 200) r.acknowledged++;
          else if (x.status === 503) {
            counts['answered-503']++;
            if (!/close/i.test(String(x.headers.connection ?? ''))) noClose++;
          } else if (x.status >= 500) {
            r.fiveXx++;
            problem(r, `run ${run}: answered ${x.status}: ${x.body.slice(0, 200)}`);
          } else counts['4xx']++;
        } else {
          if (x.kind === 'timeout') r.hangs++;
          else counts[x.kind]++;
          lostBy[kind]++;
          cut++;
        }
      }
      r.lost += cut;
      const t = outs.find(({ x }) => x.kind === 'truncated')?.x;
      const partial = t?.kind === 'truncated' ? `; one got ${t.bytes} of ${t.expected ?? '?'} bytes` : '';
      if (cut) problem(r, `run ${run}: ${cut} of ${outs.length} requests in flight got no whole answer (${tally(outs.filter(({ x }) => x.kind !== 'answered').map(({ x, kind }) => `${kind} ${x.kind}`))}${partial}), SIGTERM ${delay} ms after they were sent; exit ${exits.at(-1)}`);
      if (exit && exit.code !== 0 && !cut) problem(r, `run ${run}: every request was answered, yet the exit was ${exit.signal ?? exit.code}`);
      if (exit && exit.code === 0 && cut) problem(r, `run ${run}: exited 0 after cutting ${cut} requests off`);
    } finally {
      res.dropAgent(big);
      res.dropAgent(small);
      await killAndWait(s.child, 'SIGKILL', 10_000);
    }
  }
  r.details = {
    users,
    'in-flight': r.trials * (batches + gets),
    'unanswered-at-signal': unsettledAtSignal,
    ...counts,
    'lost-batches': lostBy.batch,
    'lost-gets': lostBy.get,
    ...(noClose ? { '503-without-close': noClose } : {}),
    exits: tally(exits),
    'exit-ms-max': exitMs.length ? Math.round(Math.max(...exitMs)) : '-',
    'signal-after-ms': delays.length ? `${Math.min(...delays)}-${Math.max(...delays)}` : '-',
    drain: o.features.drain ? `${o.features.drain.flag} ${drainS} s` : `server default (${DEFAULT_DRAIN_S} s)`,
  };
  if (counts['4xx']) r.details.note = 'some batches were refused (4xx) though a batch of this size passed the probe';
  return r;
}
