/**
 * A short chaos run (real server processes, 1–2 trials of each scenario): no acknowledged write lost over kill -9, positions
 * never reused, log damage handled, corrupted bundles refused while v1 serves; the table and JSON are well-formed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReport, runChaos, type ChaosReport } from '../loadtest/chaos.js';
import { chaosTable, parseServeHelp, TABLE_HEAD, type ChaosRow } from '../loadtest/chaos/common.js';

// One run for the whole file, its scenarios side by side (each starts its own servers); the tests read its rows.
const report: ChaosReport = await runChaos({
  concurrent: true,
  trials: 2,
  seed: 7,
  logTrials: 1,
  bundleRounds: 1,
  slowSockets: 2,
  slowBoundWithoutFlags: 2,
  sigtermRuns: 1,
  sigterm: { batches: 2, users: 256, gets: 4 },
  log: () => {},
});

const rowsOf = (prefix: string): ChaosRow[] => report.rows.filter((r) => r.scenario.startsWith(prefix));
const explain = (rs: ChaosRow[]) => rs.map((r) => `${r.scenario}: ${r.problems.join(' | ')}`).join('\n');

test('kill -9 under 4 writers: every acknowledged record survives at its position, none reused', () => {
  const [r] = rowsOf('kill -9');
  assert.ok(r, 'the kill -9 scenario ran');
  assert.equal(r.trials, 2);
  assert.ok(r.acknowledged > 0, 'writes were acknowledged before the kills');
  assert.equal(r.lost, 0, explain([r]));
  assert.equal(r.details.reused, 0, explain([r]));
  assert.equal(r.hangs, 0, explain([r]));
  assert.equal(r.fiveXx, 0, explain([r]));
  assert.ok(r.pass, explain([r]));
});

test('log damage: a torn tail is cut and writing goes on; a flipped byte refuses the start, and a skip keeps all but that record', () => {
  const [torn, flip] = [rowsOf('log: torn')[0], rowsOf('log: byte flipped')[0]];
  assert.ok(torn && flip, 'both log scenarios ran');
  assert.equal(torn.lost, 0, explain([torn]));
  assert.equal(torn.details['cut-exactly-the-tail'], '1/1', explain([torn]));
  assert.equal(torn.details['next-position-ok'], '1/1', explain([torn]));
  assert.equal(flip.details['refused-start'], '1/1', explain([flip]));
  assert.equal(flip.details['clear-error'], '1/1', explain([flip]));
  assert.equal(flip.details['log-unchanged'], '1/1', explain([flip]));
  assert.equal(flip.details.quarantined, 1, explain([flip]));
  assert.equal(flip.lost, 0, explain([flip]));
  assert.ok(torn.pass && flip.pass, explain([torn, flip]));
});

test('corrupted bundles are refused with a reason naming the file while version 1 keeps serving, without a 5xx', () => {
  const rows = rowsOf('bundle:');
  assert.equal(rows.length, 5, 'every kind of corruption ran');
  for (const r of rows) {
    assert.equal(r.trials, 1, r.scenario);
    assert.equal(r.details.refused, '1/1', explain([r]));
    assert.equal(r.details['reason-names-file'], '1/1', explain([r]));
    assert.equal(r.fiveXx, 0, explain([r]));
    assert.equal(r.hangs, 0, explain([r]));
    assert.ok(Number(r.details['requests-meanwhile']) > 0, `${r.scenario}: traffic ran during it`);
    assert.ok(r.pass, explain([r]));
  }
});

test('slow clients: every socket is closed within twice the timeout while /healthz answers', () => {
  const rows = rowsOf('slow:');
  assert.equal(rows.length, 5);
  for (const r of rows) assert.ok(r.pass, explain([r]));
  assert.equal(rows.reduce((a, r) => a + (r.open ?? 0), 0), 0, explain(rows));
});

test('SIGTERM under load: every request in flight is answered whole or refused with a 503, and the exit code says so', () => {
  const [r] = rowsOf('SIGTERM');
  assert.ok(r && r.trials === 1, 'the SIGTERM run started');
  assert.equal(r.lost, 0, explain([r]));
  assert.equal(r.hangs, 0, explain([r]));
  assert.ok(r.pass, explain([r]));
});

test('the harness leaves nothing behind and its table and JSON are well-formed', () => {
  assert.equal(report.leftoverProcesses, 0);
  assert.equal(report.leftoverDirs, 0);
  const back = JSON.parse(JSON.stringify(report)) as ChaosReport;
  assert.deepEqual(back, report, 'the report survives JSON as it is (no NaN, no undefined)');
  for (const r of back.rows) {
    for (const k of ['trials', 'acknowledged', 'lost', 'hangs', 'fiveXx'] as const) assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${r.scenario}.${k} = ${r[k]}`);
    assert.ok(r.open === null || (Number.isInteger(r.open) && r.open >= 0));
    assert.equal(r.pass, r.problems.length === 0, `${r.scenario}: pass agrees with its problems`);
  }
  assert.equal(back.pass, back.rows.every((r) => r.pass));
  const lines = chaosTable(report.rows).trimEnd().split('\n');
  assert.equal(lines.length, report.rows.length + 2, 'a header, a rule and one line per row');
  assert.deepEqual(lines[0].split(/\s{2,}/), [...TABLE_HEAD]);
  report.rows.forEach((r, i) => {
    const cells = lines[i + 2].split(/\s{2,}/);
    assert.equal(cells[0], r.scenario);
    assert.deepEqual(cells.slice(1, 8), [r.trials, r.acknowledged, r.lost, r.hangs, r.fiveXx, r.open ?? '-', r.pass ? 'yes' : 'NO'].map(String));
  });
  assert.match(formatReport(report), /^promptmm chaos: seed 7, 2 kill -9 trials/);
});

test('the hardening flags are found in serve --help, with their units', () => {
  const help = [
    'Options:',
    '  --name <name>                model name',
    '  --request-timeout <ms>       close a request whose headers and body take longer',
    '                               (default: 30000)',
    '  --keep-alive-timeout <s>     close idle keep-alive connections after s seconds',
    '  --headers-timeout <n>        seconds for the headers',
    '  --max-connections <n>        connection cap',
    '  --drain-seconds <n>          bound of the SIGTERM drain',
    '  --log-on-corrupt <mode>      fail or skip',
    '  -h, --help                   display help for command',
  ].join('\n');
  const f = parseServeHelp(help);
  assert.deepEqual(f.timeouts, [
    { flag: '--request-timeout', unit: 'ms' },
    { flag: '--headers-timeout', unit: 's' },
  ]);
  assert.deepEqual(f.keepAlive, { flag: '--keep-alive-timeout', unit: 's' });
  assert.deepEqual(f.drain, { flag: '--drain-seconds', unit: 's' });
  assert.equal(f.connectionCap, '--max-connections');
  assert.equal(f.logSkip, '--log-on-corrupt');
  const none = parseServeHelp('Options:\n  --name <name>  model name\n');
  assert.deepEqual([none.timeouts, none.keepAlive, none.drain, none.connectionCap, none.logSkip], [[], null, null, null, null]);
});
