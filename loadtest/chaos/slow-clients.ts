/**
 * Slow clients (partial headers, Content-Length and one byte, idle keep-alive, silence): the server must close each
 * socket within a bound while /healthz keeps answering; sockets still open at the bound are counted.
 */
import { connect, type Socket } from 'node:net';
import { baseArgs, durationArg, exportTinyBundle, killAndWait, problem, request, row, sleep, startServer, tally, TOKEN, type ChaosRow, type Resources, type ServerFeatures } from './common.js';

export interface SlowOptions {
  /** sockets of each kind */
  sockets: number;
  features: ServerFeatures;
  /** the timeouts given to a server that has the flags, in seconds */
  timeoutSeconds?: number;
  /** how long to wait for a server without them (its defaults are minutes) */
  boundWithoutFlags?: number;
}

const NAME = 'chaos';

interface Kind {
  name: string;
  /** what the client sends, in order; after it, nothing more */
  send: (host: string) => string;
  /** it waits for one whole answer before going quiet */
  answered?: boolean;
}

export const SLOW_KINDS: Kind[] = [
  { name: 'partial headers', send: (h) => `GET /healthz HTTP/1.1\r\nHost: ${h}\r\nX-Slow: ` },
  { name: 'Content-Length, then 1 byte', send: (h) => `POST /interactions HTTP/1.1\r\nHost: ${h}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{` },
  { name: 'idle keep-alive', send: (h) => `GET /healthz HTTP/1.1\r\nHost: ${h}\r\nConnection: keep-alive\r\n\r\n`, answered: true },
  { name: 'connect, send nothing', send: () => '' },
];

interface Probe {
  socket: Socket;
  closedAt: number | null;
  reply: string;
}

export async function slowClientScenario(res: Resources, o: SlowOptions): Promise<ChaosRow[]> {
  const rows = SLOW_KINDS.map((k) => row(`slow: ${k.name}`, { open: 0 }));
  const health = row('slow: /healthz meanwhile');
  const f = o.features;
  const t = o.timeoutSeconds ?? 2;
  const flags = [...f.timeouts.map((x) => durationArg(x, t)), ...(f.keepAlive ? [durationArg(f.keepAlive, t / 2)] : [])];
  // With the flags: twice the timeout (plus a second for the close to travel). Without: the server's defaults, which the bound does not wait out.
  const boundS = flags.length ? 2 * t + 1 : (o.boundWithoutFlags ?? 10);
  const repo = res.tempDir('slow');
  exportTinyBundle(repo, NAME);
  const s = await startServer(res, [...baseArgs(repo, NAME), ...flags]);
  if (!s.ok) {
    for (const r of [...rows, health]) problem(r, `the server did not start (${s.why}${flags.length ? ` with ${flags.join(' ')}` : ''}): ${s.stderr.slice(-300)}`);
    return [...rows, health];
  }
  const u = new URL(s.url);
  const probes: Probe[][] = SLOW_KINDS.map(() => []);
  const t0 = performance.now();
  try {
    for (const [i, k] of SLOW_KINDS.entries()) {
      for (let n = 0; n < o.sockets; n++) {
        const socket = connect({ host: u.hostname, port: Number(u.port) });
        const p: Probe = { socket, closedAt: null, reply: '' };
        socket.on('data', (b) => (p.reply += b.toString('latin1')));
        socket.on('error', () => undefined); // a reset is one way the server may end it
        socket.on('close', () => (p.closedAt = performance.now() - t0));
        socket.on('connect', () => {
          const text = k.send(u.host);
          if (text) socket.write(text);
        });
        probes[i].push(p);
        rows[i].trials++;
      }
    }
    // /healthz on fresh connections meanwhile, one at a time, each bounded.
    let stop = false;
    const latencies: number[] = [];
    const healthLoop = (async () => {
      while (!stop) {
        health.trials++;
        const out = await request(s.url, { path: '/healthz', timeoutMs: 2000 });
        if (out.kind === 'answered' && out.status === 200) {
          health.acknowledged++;
          latencies.push(out.ms);
        } else if (out.kind === 'timeout') {
          health.hangs++;
          problem(health, `/healthz did not answer within 2 s at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        } else {
          if (out.kind === 'answered' && out.status >= 500) health.fiveXx++;
          problem(health, `/healthz: ${out.kind}${out.kind === 'answered' ? ` ${out.status}` : ''} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        }
        await sleep(200);
      }
    })();
    await sleep(boundS * 1000);
    stop = true;
    await healthLoop;
    health.details = { 'max-ms': latencies.length ? Math.round(Math.max(...latencies)) : '-', 'bound-s': boundS };
    for (const [i, k] of SLOW_KINDS.entries()) {
      const r = rows[i];
      const ps = probes[i];
      const open = ps.filter((p) => p.closedAt === null);
      r.open = open.length;
      const statuses = ps.map((p) => /^HTTP\/1\.1 (\d{3})/.exec(p.reply)?.[1] ?? 'none');
      if (k.answered) r.acknowledged = statuses.filter((x) => x === '200').length;
      const closed = ps.map((p) => p.closedAt).filter((x): x is number => x !== null);
      r.details = {
        'bound-s': boundS,
        'closed-by-s': closed.length ? (Math.max(...closed) / 1000).toFixed(1) : '-',
        replies: tally(statuses),
        timeouts: flags.length ? flags.join(' ') : 'server defaults (no timeout flags)',
      };
      if (open.length) problem(r, `${open.length} of ${ps.length} "${k.name}" sockets still open after ${boundS} s`);
    }
  } finally {
    for (const ps of probes) for (const p of ps) p.socket.destroy();
    await killAndWait(s.child, 'SIGTERM', 15_000);
  }
  return [...rows, health];
}
