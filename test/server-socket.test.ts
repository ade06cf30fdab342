/** The server over a real socket: hot reload by the folder watch under load, and graceful shutdown of a real process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportBundle } from '../export/exporter.js';
import { spawnServer } from '../loadtest/spawn-server.js';
import { HNSW, repoWith, smallBundle, testServer } from '../test-support/serving.js';


test('a new version appearing in the repository is picked up by the watch while requests keep succeeding', async () => {
  const { repo } = repoWith('w');
  const s = await testServer(repo, 'w');
  const base = await s.app.listen({ host: '127.0.0.1', port: 0 });
  try {
    let stop = false;
    const versions = new Set<number>();
    const failures: string[] = [];
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const res = await fetch(`${base}/recommend?user=u${(w * 31 + i) % 200}&k=10&retrieval=${i % 3 ? 'ann' : 'exact'}`);
        if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
        else versions.add((await res.json()).model_version);
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
    await new Promise((r) => setTimeout(r, 300));
    exportBundle(smallBundle('w', 9), { repo, hnsw: HNSW });
    const t0 = Date.now();
    while (s.holder.model?.version !== 2 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    assert.equal(s.holder.model?.version, 2, 'the watch loaded version 2');
    assert.ok(versions.has(1) && versions.has(2), `served versions ${[...versions]}`);
  } finally {
    await s.close();
  }
});

test('SIGTERM: in-flight requests finish, then the process exits 0', async () => {
  const { repo } = repoWith('g');
  const server = spawnServer(['--name', 'g', '--repo', repo, '--port', '0', '--poll-seconds', '0']);
  const { child } = server;
  const address = await server.url;
  assert.equal((await fetch(`${address}/recommend?user=u1&k=5`)).status, 200);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const inFlight = Array.from({ length: 30 }, (_, i) => fetch(`${address}/recommend?user=u${i + 1}&k=20&retrieval=exact`).then((r) => r.status));
  // Signal once the first answer is back: the others were sent with it and are in flight.
  await Promise.race(inFlight);
  child.kill('SIGTERM');
  const statuses = await Promise.allSettled(inFlight);
  const code = await exited;
  assert.equal(code, 0, server.stderr());
  // Every request that reached the server before the signal got its answer; none got a 5xx.
  for (const s of statuses) if (s.status === 'fulfilled') assert.ok(s.value === 200 || s.value === 503, `status ${s.value}`);
  assert.ok(statuses.some((s) => s.status === 'fulfilled' && s.value === 200), 'some requests were answered');
  assert.match(server.stderr(), /shut down cleanly/);
});
