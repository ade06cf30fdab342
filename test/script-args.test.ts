import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { headerComment } from '../core/script-args.js';

test('headerComment: the leading block comment without its markers', () => {
  assert.equal(headerComment('/**\n * bench:x — what it measures.\n *\n *   npm run bench:x -- [--n 3]\n */\nimport x from "y";\n/** not this */'), 'bench:x — what it measures.\n\n  npm run bench:x -- [--n 3]');
  assert.equal(headerComment('import x from "y";'), '');
});

// A real script (no model needed: --help and a bad flag are answered before any work).
const script = resolve('dist/loadtest/scale-bundle.js');

test('a script answers --help with its header comment and flags', () => {
  const r = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /a synthetic bundle of 1,000,000 users/);
  assert.match(r.stdout, /--items VALUE \(default "1000000"\)/);
});

test('an unknown flag is one line naming it, exit status 2, no stack trace', () => {
  const r = spawnSync(process.execPath, [script, '--itmes', '5'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^scale-bundle\.js: Unknown option '--itmes' \(--help lists the flags\)\n$/);
});
