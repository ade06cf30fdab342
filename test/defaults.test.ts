/** core/defaults.ts: one declaration per setting that the library, the CLI and the docs/configuration.md table all follow. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULTS, SETTINGS, SettingError, checkFields, fromEnv, type Setting } from '../core/defaults.js';
import { currentSettingsTable, settingsTable, withSettingsTable, TABLE_BEGIN, TABLE_END } from '../core/settings-table.js';
import { STUDENT_DEFAULTS, STUDENT_FIELDS } from '../trainer/stages/student.js';
import { TEACHER_DEFAULTS } from '../trainer/stages/teacher.js';
import { KD_DEFAULTS } from '../trainer/stages/kd.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { runCli } from '../test-support/cli.js';

const all = Object.values(SETTINGS) as Setting<unknown>[];

test('the library defaults are the declared ones', () => {
  assert.equal(STUDENT_DEFAULTS.dim, DEFAULTS.dim);
  assert.deepEqual(STUDENT_DEFAULTS.ks, DEFAULTS.ks);
  assert.notEqual(STUDENT_DEFAULTS.ks, DEFAULTS.ks, 'arrays are copied, not shared');
  assert.equal(TEACHER_DEFAULTS.layers, DEFAULTS.teacherLayers);
  assert.equal(TEACHER_DEFAULTS.lr, DEFAULTS.teacherLr);
  assert.equal(KD_DEFAULTS.gamma, DEFAULTS.gamma);
  assert.equal(KD_DEFAULTS.adaptPrompt, DEFAULTS.prompt);
  assert.equal(HNSW_DEFAULTS.efSearch, DEFAULTS.hnswEf);
  assert.equal(DEFAULTS.cacheUsers, 100_000);
});

test('parse and check name the flag, the value and the range', () => {
  assert.throws(() => SETTINGS.gamma.parse('0.5'), (e: Error) => e instanceof SettingError && /^--gamma must be a number ≥ 1, got "0.5"$/.test(e.message));
  assert.throws(() => SETTINGS.teacherDropout.parse('1'), /--teacher-dropout must be a number ≥ 0 and < 1/);
  assert.throws(() => SETTINGS.ks.parse('10,,20'), /--ks must be comma-separated positive integers ≤ 1000/);
  assert.throws(() => SETTINGS.ks.parse('2000'), /--ks/);
  assert.deepEqual(SETTINGS.ks.parse('10, 50'), [10, 50]);
  assert.throws(() => SETTINGS.dim.parse(''), /--dim must be an integer ≥ 1, got ""/);
  assert.throws(() => SETTINGS.onlineMix.check(-1), /onlineMix must be a non-negative number, got -1/);
  assert.throws(() => checkFields({ ...STUDENT_DEFAULTS, batch: 0 }, STUDENT_FIELDS), /--batch must be an integer ≥ 1, got 0/);
  assert.deepEqual(SETTINGS.providers.parse('cpu'), ['cpu']);
  assert.throws(() => SETTINGS.providers.parse('tpu'), /--providers must list cuda and\/or cpu/);
});

test('env vars parse through the same validation; an error names the variable; unset or empty gives the default', () => {
  assert.equal(fromEnv('port', {}), 8080);
  assert.equal(fromEnv('port', { PROMPTMM_PORT: '' }), 8080);
  assert.equal(fromEnv('port', { PROMPTMM_PORT: '9000' }), 9000);
  assert.throws(() => fromEnv('port', { PROMPTMM_PORT: 'x' }), /PROMPTMM_PORT must be an integer from 0 to 65535, got "x"/);
  assert.equal(fromEnv('debug', { PROMPTMM_DEBUG: '1' }), true);
  assert.equal(fromEnv('token', {}), undefined);
});

test('every setting has a description, a section, and a default that passes its own check', () => {
  for (const s of all) {
    assert.ok(s.description.length > 3, s.key);
    if (s.default !== undefined) s.check(s.default);
    else assert.ok(s.required || s.defaultText, `${s.key}: no default and nothing says what happens without one`);
  }
});

test('each command shows the flags of its settings, with their defaults', () => {
  const train = runCli('train', '--help').stdout;
  for (const s of all.filter((x) => ['training', 'teacher', 'distillation'].includes(x.section))) assert.ok(train.includes(s.flag!.split(' ')[0]), s.flag);
  assert.match(train, /--valid-metric <m>[\s\S]*default: "recall@20"/);
  const serve = runCli('serve', '--help').stdout;
  for (const s of all.filter((x) => x.section === 'serving' || x.section === 'online')) {
    if (s.flag) assert.ok(serve.includes(s.flag.split(' ')[0]), s.flag);
    if (s.env) assert.ok(serve.replace(/\s+/g, ' ').includes(s.env), s.env);
  }
  assert.match(serve.replace(/\s+/g, ' '), /--cache-users <n> .*\(default: 100000, env: PROMPTMM_CACHE_USERS\)/);
  const finetune = runCli('finetune', '--help').stdout;
  for (const s of all.filter((x) => x.section === 'finetune')) assert.ok(finetune.includes(s.flag!.split(' ')[0]), s.flag);
});

test('the table lists every setting; the splice needs both markers', () => {
  const table = settingsTable();
  for (const s of all) assert.ok(table.includes(`| \`${s.key}\` |`), s.key);
  const doc = `# x\n\n${TABLE_BEGIN}\nold\n${TABLE_END}\n\nafter\n`;
  const out = withSettingsTable(doc, table)!;
  assert.equal(currentSettingsTable(out), table);
  assert.ok(out.endsWith(`${TABLE_END}\n\nafter\n`));
  assert.equal(withSettingsTable(out, table), out, 'idempotent');
  assert.equal(withSettingsTable('# no markers\n', table), null);
});

test("docs/configuration.md's settings table is the rendering of core/defaults.ts (npm run docs:defaults)", (t) => {
  const readme = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));
  const text = existsSync(readme) ? readFileSync(readme, 'utf8') : '';
  const current = currentSettingsTable(text);
  if (current === null) return t.skip('docs/configuration.md has no defaults markers yet');
  assert.equal(current, settingsTable(), 'docs/configuration.md is stale: run npm run docs:defaults');
});
