/**
 * bench/paired-users.py with several held-out items per user: its per-split means agree with
 * `evaluate` on the same embeddings, and the paired difference of a dump with itself is zero.
 * Skipped where /usr/bin/python3 has no numpy or the yardstick's reader is absent (a bench script).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../trainer/engine/backend.js';
import { loadDataset } from '../data/dataset.js';
import { evaluate } from '../trainer/eval.js';
import { writeNpy } from '../core/npy.js';
import { Rng } from '../core/rng.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const YARDSTICK = resolve(REPO, '..', 'shared', 'yardstick');
const PY = '/usr/bin/python3';
const numpy = existsSync(PY) && spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const why = !numpy ? `${PY} with numpy not available` : !existsSync(join(YARDSTICK, 'mmrec_data.py')) ? `${YARDSTICK}/mmrec_data.py not present` : '';

test('paired-users.py: any number of held-out items per user', { skip: why || false }, async () => {
  await initEngine('wasm');
  const root = mkdtempSync(join(tmpdir(), 'paired-'));
  try {
    const rng = new Rng(3);
    const nUsers = 40;
    const nItems = 60;
    const lines = ['userID\titemID\tx_label'];
    for (let u = 0; u < nUsers; u++) {
      const items = new Set<number>();
      while (items.size < 12) items.add(rng.int(nItems));
      [...items].forEach((it, k) => lines.push(`${u}\t${it}\t${k < 6 ? 0 : k < 9 ? 1 : 2}`)); // 3 validation and 3 test items each
    }
    const data = join(root, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'p.inter'), lines.join('\n') + '\n');
    const d = 8;
    const dump = (name: string, seed: number) => {
      const r = new Rng(seed);
      const dir = join(root, name);
      mkdirSync(dir);
      const users = Float32Array.from({ length: nUsers * d }, () => r.normal());
      const items = Float32Array.from({ length: nItems * d }, () => r.normal());
      writeNpy(join(dir, 'user_embeddings.npy'), users, [nUsers, d]);
      writeNpy(join(dir, 'item_embeddings.npy'), items, [nItems, d]);
      return { dir, users, items };
    };
    const a = dump('a', 1);
    const b = dump('b', 2);
    const ds = loadDataset(data);
    const run = (x: string, y: string) => {
      const r = spawnSync(PY, [join(REPO, 'bench', 'paired-users.py'), x, y, '--data', data, '--yardstick', YARDSTICK, '--k', '5'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    const out = run(a.dir, b.dir);
    for (const split of ['val', 'test'] as const) {
      const ma = evaluate(a.users, a.items, d, ds, { split, ks: [5] });
      const mb = evaluate(b.users, b.items, d, ds, { split, ks: [5] });
      const line = out.split('\n').find((l) => l.startsWith(`${split} (`))!;
      assert.match(line, /40 users, 3\.00 held-out items per user/);
      const m = /R@5 ([\d.]+) vs ([\d.]+), diff ([-+][\d.]+) .* N@5 ([\d.]+) vs ([\d.]+), diff ([-+][\d.]+)/.exec(line)!;
      assert.ok(m, line);
      const near = (got: string, want: number) => assert.ok(Math.abs(Number(got) - want) < 6e-5, `${split}: ${got} vs ${want.toFixed(4)}`);
      near(m[1], ma['recall@5']);
      near(m[2], mb['recall@5']);
      near(m[3], ma['recall@5'] - mb['recall@5']);
      near(m[4], ma['ndcg@5']);
      near(m[5], mb['ndcg@5']);
      near(m[6], ma['ndcg@5'] - mb['ndcg@5']);
    }
    assert.match(run(a.dir, a.dir), /val .*diff \+0\.0000 ± 0\.0000 \(users scored differently 0\.000\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
