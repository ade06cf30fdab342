/** Issue 18, versions: POST /admin/versions/{n}/pin serves n (rollback) until unpin; the reloader loads nothing else meanwhile; the pin survives a restart. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { exportBundle } from '../export/exporter.js';
import { modelDir } from '../repository/versions.js';
import { HNSW, repoWith, smallBundle, testServer } from '../test-support/serving.js';

const auth = { authorization: 'Bearer secret' };

test('pin rolls back to an older version, survives reloads and a restart; unpin returns to the newest', async () => {
  const { repo } = repoWith('pin', 2);
  let s = await testServer(repo, 'pin');
  try {
    const { app } = s;
    assert.equal(s.holder.model!.version, 2);
    let r = await app.inject({ method: 'POST', url: '/admin/versions/1/pin', headers: auth });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { pinned: 1, version: 1 });
    assert.equal(s.holder.model!.version, 1, 'the older version is served');
    const ready = (await app.inject({ method: 'GET', url: '/readyz' })).json();
    assert.equal(ready.pinned, 1);
    assert.equal(ready.model.version, 1);
    assert.match((await app.inject({ method: 'GET', url: '/metrics' })).body, /^promptmm_model_pinned_version 1$/m);
    // a new export does not replace the pinned version, nor does /admin/reload
    exportBundle(smallBundle('pin', 3), { repo, hnsw: HNSW });
    r = await app.inject({ method: 'POST', url: '/admin/reload', headers: auth });
    assert.equal(r.statusCode, 200);
    assert.equal(s.holder.model!.version, 1);
    assert.ok(existsSync(join(modelDir(repo, 'pin'), 'pinned.json')));
    // bad and missing versions name the problem; nothing changes
    r = await app.inject({ method: 'POST', url: '/admin/versions/abc/pin', headers: auth });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().field, 'n');
    r = await app.inject({ method: 'POST', url: '/admin/versions/9/pin', headers: auth });
    assert.equal(r.statusCode, 404);
    assert.match(r.json().message, /version 9 of model pin does not exist/);
    assert.equal((await app.inject({ method: 'POST', url: '/admin/versions/1/pin' })).statusCode, 401, 'token-protected');
    assert.equal(s.holder.model!.version, 1);
  } finally {
    await s.close();
  }
  // restart: still pinned
  s = await testServer(repo, 'pin');
  try {
    assert.equal(s.holder.model!.version, 1);
    assert.equal((await s.app.inject({ method: 'GET', url: '/readyz' })).json().pinned, 1);
    const r = await s.app.inject({ method: 'POST', url: '/admin/versions/unpin', headers: auth });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().unpinned, 1);
    assert.equal(r.json().version, 3);
    assert.equal(s.holder.model!.version, 3, 'unpinned: the newest is served');
    assert.equal((await s.app.inject({ method: 'GET', url: '/readyz' })).json().pinned, null);
    assert.ok(!existsSync(join(modelDir(repo, 'pin'), 'pinned.json')));
  } finally {
    await s.close();
  }
});
