/**
 * Slow clients against `promptmm serve` with its default timeouts, measured: how long the server
 * keeps each kind of slow or idle connection open before it closes it (up to --cap seconds).
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { spawnServer } from '../loadtest/spawn-server.js';
import { rawConnect, rawRequest, type RawConnection } from '../test-support/raw-http.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, { options: { cap: { type: 'string', default: '120' } } });
const cap = Number(a.cap) * 1000;

const repo = mkdtempSync(join(tmpdir(), 'promptmm-slow-'));
exportBundle(syntheticBundle({ name: 's', users: 2000, items: 4000, dim: 32, seed: 3 }), { repo, hnsw: { space: 'ip', m: 16, efConstruction: 100, efSearch: 200, seed: 1 } });
const server = spawnServer(['--name', 's', '--repo', repo, '--port', '0', '--poll-seconds', '0']);
const port = Number(new URL(await server.url).port);

const trickle = (c: RawConnection, bytes: string, everyMs: number) => {
  let i = 0;
  const t = setInterval(() => (i < bytes.length && !c.socket.destroyed ? c.socket.write(bytes[i++]) : clearInterval(t)), everyMs);
  c.done.then(() => clearInterval(t));
};
const kinds: [string, (c: RawConnection) => void][] = [
  ['connects, sends nothing', () => undefined],
  ['half the headers, then silence', (c) => c.socket.write('GET /recommend?user=1&k=10 HTTP/1.1\r\nHost: x\r\n')],
  ['headers one byte every 2 s', (c) => trickle(c, rawRequest('GET', '/recommend?user=1&k=10') + 'x'.repeat(10_000), 2000)],
  ['Content-Length: 1000, one byte, silence', (c) => c.socket.write(rawRequest('POST', '/recommend', '{', { 'content-length': '1000' }))],
  ['body one byte every 2 s', (c) => (c.socket.write(rawRequest('POST', '/recommend', '', { 'content-length': '1000', 'content-type': 'application/json' })), trickle(c, ' '.repeat(1000), 2000))],
  ['idle keep-alive after one answer', (c) => c.socket.write(rawRequest('GET', '/recommend?user=1&k=10'))],
];
const t0 = Date.now();
const results = await Promise.all(kinds.map(async ([what, start]) => {
  const c = await rawConnect(port);
  const opened = Date.now();
  start(c);
  const closed = await Promise.race([c.done.then(() => Date.now()), new Promise<null>((r) => setTimeout(() => r(null), cap))]);
  const status = c.responses.map((r) => r.status).join(',') || '-';
  if (closed === null) c.close();
  return { what, when: closed === null ? `open after ${cap / 1000} s` : `closed after ${((closed - opened) / 1000).toFixed(1)} s`, status };
}));
for (const r of results) console.log(`${r.what.padEnd(42)} ${r.when}  (answers: ${r.status})`);

// A client that never reads never sees the close (the server's FIN waits behind the unread
// answer), so this one is watched from the server's side: the socket inodes it holds open.
const sockets = () => new Set(readdirSync(`/proc/${server.child.pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${server.child.pid}/fd/${f}`); } catch { return ''; } }).filter((l) => l.startsWith('socket:')));
const before = sockets();
const reader = await rawConnect(port);
reader.socket.pause();
reader.socket.write(rawRequest('POST', '/recommend', JSON.stringify({ users: Array.from({ length: 256 }, (_, i) => String(i)), k: 1000 })));
const opened = Date.now();
let mine: string | undefined;
while (!mine && Date.now() - opened < 5000) {
  mine = [...sockets()].find((s) => !before.has(s));
  await new Promise((r) => setTimeout(r, 10));
}
while (mine && sockets().has(mine) && Date.now() - opened < cap) await new Promise((r) => setTimeout(r, 200));
console.log(`${'never reads a 10 MB answer'.padEnd(42)} ${!mine ? 'not seen' : sockets().has(mine) ? `open after ${cap / 1000} s` : `closed after ${((Date.now() - opened) / 1000).toFixed(1)} s`} (server side)`);
reader.close();
console.log(`(${((Date.now() - t0) / 1000).toFixed(0)} s)`);
server.child.kill('SIGTERM');
await new Promise((r) => server.child.on('exit', r));
rmSync(repo, { recursive: true, force: true });
