/** `serve` failing to start: a port in use is one error line and exit 1, not a process kept alive by its folder watch. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { CLI } from '../loadtest/spawn-server.js';
import { repoWith } from '../test-support/serving.js';

test('serve on a port in use exits 1 with the error, instead of hanging', async () => {
  const { repo } = repoWith('busy');
  const blocker = netServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--name', 'busy', '--repo', repo, '--port', String(port), '--poll-seconds', '1'], {
      encoding: 'utf8',
      timeout: 60_000, // a hang is a failure, not a wait
      env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' },
    });
    assert.equal(r.signal, null, 'ended by itself');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /EADDRINUSE/);
  } finally {
    blocker.close();
  }
});
