/**
 * SIGTERM under load, measured: heavy batch requests, pipelined and keep-alive requests in flight
 * when `promptmm serve` gets SIGTERM; counts answers that came back whole, clean 503s, truncated and dropped ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { spawnServer } from '../loadtest/spawn-server.js';
import { rawConnect, rawRequest, type RawOutcome, type RawResponse } from '../test-support/raw-http.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    trials: { type: 'string', default: '10' },
    posts: { type: 'string', default: '8' },
    users: { type: 'string', default: '256' },
    k: { type: 'string', default: '1000' },
    pipelined: { type: 'string', default: '4' },
    keepalive: { type: 'string', default: '8' },
    items: { type: 'string', default: '4000' },
  },
});
const trials = Number(a.trials), posts = Number(a.posts), users = Number(a.users), k = Number(a.k);
const pipelined = Number(a.pipelined), keepalive = Number(a.keepalive);

type Kind = 'ok' | 'clean503' | 'truncated' | 'dropped' | 'other';
function classify(r: RawResponse | undefined, expect: (j: unknown) => boolean): Kind {
  if (!r) return 'dropped';
  if (!r.complete) return 'truncated';
  if (r.status === 503) return r.headers.connection === 'close' ? 'clean503' : 'other';
  if (r.status !== 200) return 'other';
  try {
    return expect(JSON.parse(r.body.toString('utf8'))) ? 'ok' : 'truncated';
  } catch {
    return 'truncated';
  }
}

const repo = mkdtempSync(join(tmpdir(), 'promptmm-sigterm-'));
exportBundle(syntheticBundle({ name: 's', users: 2000, items: Number(a.items), dim: 32, seed: 3 }), { repo, hnsw: { space: 'ip', m: 16, efConstruction: 100, efSearch: 200, seed: 1 } });
const total: Record<Kind, number> = { ok: 0, clean503: 0, truncated: 0, dropped: 0, other: 0 };
const exits: string[] = [];
for (let t = 0; t < trials; t++) {
  const server = spawnServer(['--name', 's', '--repo', repo, '--port', '0', '--poll-seconds', '0', '--retrieval', 'exact']);
  const port = Number(new URL(await server.url).port);
  const exited = new Promise<number | null>((r) => server.child.on('exit', (c) => r(c)));
  const ids = (n: number, off: number) => Array.from({ length: n }, (_, i) => String((off + i * 7) % 2000));
  const batch = (j: number) => rawRequest('POST', '/recommend', JSON.stringify({ users: ids(users, j * 13), k }), { connection: 'close' });
  const okBatch = (j: unknown) => (j as { results?: { items: unknown[] }[] }).results?.length === users && (j as { results: { items: unknown[] }[] }).results.every((x) => x.items.length === k);
  const okOne = (j: unknown) => (j as { items?: unknown[] }).items?.length === k;
  // Keep-alive connections that already had one answer: their second request goes out just before the signal.
  const idle = await Promise.all(Array.from({ length: keepalive }, () => rawConnect(port)));
  await Promise.all(idle.map((c, i) => (c.socket.write(rawRequest('GET', `/recommend?user=${i}&k=10`)), c.responsesAt(1))));
  const heavy = await Promise.all(Array.from({ length: posts }, () => rawConnect(port)));
  heavy.forEach((c, j) => c.socket.write(batch(j)));
  const pipe = await rawConnect(port);
  pipe.socket.write(Array.from({ length: pipelined }, (_, i) => rawRequest('GET', `/recommend?user=${100 + i}&k=${k}`)).join(''));
  await new Promise((r) => setTimeout(r, 100 + Math.random() * 800));
  idle.forEach((c, i) => c.socket.write(rawRequest('GET', `/recommend?user=${200 + i}&k=${k}`, undefined, { connection: 'close' })));
  server.child.kill('SIGTERM');
  const kinds: Record<Kind, number> = { ok: 0, clean503: 0, truncated: 0, dropped: 0, other: 0 };
  const detail: Record<string, number> = {};
  const count = (what: string, o: RawOutcome, n: number, from: number, expect: (j: unknown) => boolean) => {
    for (let i = from; i < from + n; i++) {
      const kind = classify(o.responses[i], expect);
      kinds[kind]++;
      if (kind !== 'ok') detail[`${what} ${kind}`] = (detail[`${what} ${kind}`] ?? 0) + 1;
    }
  };
  for (const c of heavy) count('post', await c.done, 1, 0, okBatch);
  count('pipelined', await pipe.done, pipelined, 0, okOne);
  for (const c of idle) count('keep-alive', await c.done, 1, 1, okOne);
  const code = await exited;
  const clean = /shut down cleanly/.test(server.stderr());
  exits.push(`${code}${clean ? '' : '!'}`);
  for (const key of Object.keys(kinds) as Kind[]) total[key] += kinds[key];
  console.log(`trial ${t + 1}: exit ${code}${clean ? ' (logged clean)' : ''}  ${JSON.stringify(kinds)}  ${JSON.stringify(detail)}`);
}
console.log(`total over ${trials} trials (${posts} POSTs of ${users} users × k=${k}, ${pipelined} pipelined GETs, ${keepalive} keep-alive GETs each): ${JSON.stringify(total)}; exit codes ${exits.join(',')}`);
rmSync(repo, { recursive: true, force: true });
