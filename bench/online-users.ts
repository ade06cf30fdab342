/**
 * bench:users — memory held for users first seen online: RSS and heap after N distinct new users
 * each POST one interaction (after a collection; and the peak RSS), one fresh process per cap on
 * online-only users. NOSNAP=1 turns the online-state snapshots off.
 *
 *   npm run bench:users -- [--users 100000] [--caps 100000,10000] [--tag NAME]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';
import { createServer } from '../server/server.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    users: { type: 'string', default: '100000' },
    caps: { type: 'string', default: '100000,10000' },
    tag: { type: 'string' },
    /** internal: run one measurement with this cap and print it as JSON */
    child: { type: 'string' },
  },
});
const users = Number(a.users);
const MiB = (b: number) => +(b / 2 ** 20).toFixed(1);

function settled() {
  global.gc?.();
  global.gc?.();
  const m = process.memoryUsage();
  return { rssMiB: MiB(m.rss), heapUsedMiB: MiB(m.heapUsed) };
}

if (a.child !== undefined) {
  const repo = mkdtempSync(join(tmpdir(), 'promptmm-users-'));
  try {
    exportBundle(syntheticBundle({ name: 'u', users: 9308, items: 6710, dim: 64, seenPerUser: 6, seed: 1 }), { repo, hnsw: { space: 'ip', m: 16, efConstruction: 100, efSearch: 100, seed: 1 } });
    const s = await createServer(
      { name: 'u', repo, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: ['cpu'], pollSeconds: 0, token: 'secret', online: { roundEvery: 0, roundSeconds: 0, maxOnlineUsers: Number(a.child), ...(process.env.NOSNAP ? { snapshotEvery: 0, snapshotSeconds: 0 } : {}) } as object },
      pino({ level: 'warn' }),
    );
    await s.app.inject({ method: 'GET', url: '/recommend?user=u1&k=10' });
    const before = settled();
    const t0 = performance.now();
    for (let n = 0; n < users; n += 1000) {
      const interactions = Array.from({ length: Math.min(1000, users - n) }, (_, k) => ({ user: `new-user-${n + k}`, item: `i${(n + k) % 6710}` }));
      const r = await s.app.inject({ method: 'POST', url: '/interactions', headers: { authorization: 'Bearer secret' }, payload: { interactions } });
      if (r.statusCode !== 200) throw new Error(r.body);
    }
    const seconds = +((performance.now() - t0) / 1000).toFixed(1);
    // (a snapshot may be in flight: its copies are not what the users hold)
    await (s.online as { snapshotsSettled?: () => Promise<void> }).snapshotsSettled?.();
    const after = { ...settled(), peakRssMiB: MiB(process.resourceUsage().maxRSS * 1024) };
    const m = s.holder.model!;
    const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
    const pick = (n: string) => Number(new RegExp(`^${n} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    console.log(JSON.stringify({ cap: Number(a.child), users, before, after, seconds, usersKnown: m.nUsers, onlineUsersMetric: pick('promptmm_online_users'), evictionsMetric: pick('promptmm_online_user_evictions_total') }));
    await s.close();
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
} else {
  const rows = [];
  for (const cap of a.caps!.split(',').map(Number)) {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', String(cap), '--users', String(users)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    const row = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    process.stderr.write(`${JSON.stringify(row)}\n`);
    rows.push(row);
  }
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(join('bench/results', `online-users-${new Date().toISOString().slice(0, 10)}${a.tag ? `-${a.tag}` : ''}.json`), JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2) + '\n');
}
