/** A short smoke run of the load-test harness: it starts a server, runs, reports and cleans up (no timing assertions). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadtest } from '../loadtest/run.js';
import { attributeRounds, median, repeatTable, summarize, table, type ScenarioResult } from '../loadtest/report.js';
import { loadTraffic, planRequests } from '../loadtest/traffic.js';
import { repoWith } from '../test-support/serving.js';

test('traffic: users from the bundle, skewed toward active users; cold users are unknown', () => {
  const { repo, input } = repoWith('t');
  const t = loadTraffic(repo, 't');
  assert.equal(t.users.length, input.nUsers);
  const plan = planRequests('recommend', t, 5000);
  const counts = new Map<string, number>();
  for (const p of plan) counts.set(p.path, (counts.get(p.path) ?? 0) + 1);
  const top = Math.max(...counts.values());
  assert.ok(top > 5000 / input.nUsers * 10, `the most requested user gets ${top} of 5000 requests`);
  assert.ok(planRequests('cold', t, 10).every((p) => /user=loadtest-new-/.test(p.path)));
  assert.ok(planRequests('baseline', t, 3).every((p) => p.path === '/healthz'));
});

test('loadtest runs the baseline and the scenarios, writes JSON and SVG reports', async () => {
  const { repo } = repoWith('lt');
  const out = mkdtempSync(join(tmpdir(), 'promptmm-lt-'));
  // a round every 2 interactions: mixed's posts trigger some even on a slow machine, and the report must show them
  const report = await loadtest({ scenarios: ['recommend', 'exact', 'mixed', 'cold'], connections: 4, duration: 1, warmup: 0, name: 'lt', repo, out, serverArgs: ['--round-every', '2'], log: () => {} });
  assert.deepEqual(report.results.map((r) => r.scenario), ['baseline', 'recommend', 'exact', 'mixed', 'cold']);
  for (const r of report.results) {
    assert.ok(r.requests > 0, `${r.scenario} sent requests`);
    assert.equal(r.non2xx, 0, `${r.scenario} non-2xx`);
    assert.ok(r.latencyMs.p99 >= r.latencyMs.p50);
  }
  assert.equal(report.failed, false);
  assert.equal(report.results[0].ratioToBaseline, 1);
  assert.ok(existsSync(report.files.json));
  assert.match(readFileSync(report.files.svg, 'utf8'), /^<svg/);
  assert.match(table(report.results), /recommend .* 0 +0/);
  // the started server's whole log is kept, and its rounds are attributed to the runs they overlapped
  assert.match(readFileSync(report.files.serverLog!, 'utf8'), /serving on http/);
  const by = new Map(report.results.map((r) => [r.scenario, r]));
  assert.equal(by.get('baseline')!.rounds!.count, 0);
  assert.ok(by.get('mixed')!.rounds!.count >= 1, `mixed overlapped ${by.get('mixed')!.rounds!.count} rounds`);
  assert.match(table(report.results), /mixed .* \d+ rounds?, \d+\.\d s/);
  // mixed posted interactions to the started server's scratch repository, not to the model's own log
  assert.equal(existsSync(join(repo, 'lt', 'interactions')), false);
});

test('attributeRounds: a round counts for every run it overlapped, with the seconds of overlap', () => {
  const run = (scenario: string, a: number, b: number): ScenarioResult => ({
    scenario, rps: 1, requests: 1, seconds: 1, ratioToBaseline: 1, errors: 0, timeouts: 0, non2xx: 0, distribution: [],
    latencyMs: { p50: 1, p90: 1, p99: 1, max: 1, mean: 1 }, window: [a, b],
  });
  const rs = [run('baseline', 0, 10_000), run('mixed', 10_000, 20_000), run('cold', 20_000, 30_000)];
  const line = (time: number, msg: string, seconds?: number) => JSON.stringify({ level: 30, time, msg, ...(seconds === undefined ? {} : { seconds }) });
  // 12–14 s done; 18 s started, failed at 23 s; 26 s started and still running at the log's last line (29 s);
  // a torn line and other messages are skipped
  attributeRounds(rs, [
    line(5000, 'serving on http://x'),
    line(12_000, 'fine-tuning round started'),
    line(14_000, 'fine-tuning round done', 2),
    '{"msg":"fine-tuning round done", "ti',
    line(18_000, 'fine-tuning round started'),
    line(23_000, 'fine-tuning round failed; the served vectors stay as they were'),
    line(26_000, 'fine-tuning round started'),
    line(29_000, 'shutting down'),
  ].join('\n'));
  assert.deepEqual(rs.map((r) => r.rounds), [{ count: 0, seconds: 0 }, { count: 2, seconds: 4 }, { count: 2, seconds: 6 }]);
  // an older server's log (no start lines): the span of each done line from its seconds
  attributeRounds(rs, [line(14_000, 'fine-tuning round done', 2), line(23_000, 'fine-tuning round done', 5)].join('\n'));
  assert.deepEqual(rs.map((r) => r.rounds), [{ count: 0, seconds: 0 }, { count: 2, seconds: 4 }, { count: 1, seconds: 3 }]);
});

test('loadtest refuses non-loopback targets', async () => {
  const { repo } = repoWith('lt2');
  await assert.rejects(loadtest({ scenarios: ['recommend'], connections: 1, duration: 1, warmup: 0, name: 'lt2', repo, url: 'http://10.1.2.3:8080', out: tmpdir(), serverArgs: [] }), /only loopback targets/);
});

test('summarize: median ratio to the paired baselines and its range, per scenario', () => {
  const run = (scenario: string, round: number, rps: number, ratio: number, p99: number): ScenarioResult => ({
    scenario, round, rps, requests: rps, seconds: 1, ratioToBaseline: ratio, errors: 0, timeouts: 0, non2xx: 0, distribution: [],
    latencyMs: { p50: p99 / 2, p90: p99, p99, max: p99, mean: p99 / 2 },
  });
  const s = summarize([run('baseline', 1, 100, 1, 2), run('recommend', 1, 80, 0.8, 4), run('baseline', 2, 50, 1, 3), run('recommend', 2, 45, 0.9, 6), run('baseline', 3, 90, 1, 2), run('recommend', 3, 63, 0.7, 5)]);
  assert.deepEqual(s.map((x) => x.scenario), ['baseline', 'recommend']);
  assert.deepEqual(s[1].ratio, { median: 0.8, min: 0.7, max: 0.9 });
  assert.deepEqual(s[1].p99Ms, { median: 5, min: 4, max: 6 });
  assert.equal(s[1].rps.median, 63);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.match(repeatTable(s), /recommend +3 +80% \(70%–90%\)/);
});

test('loadtest --repeat alternates baseline and scenario runs; each ratio is to the baseline just before it', async () => {
  const { repo } = repoWith('lr');
  const out = mkdtempSync(join(tmpdir(), 'promptmm-lt-'));
  const report = await loadtest({ scenarios: ['recommend'], connections: 2, duration: 1, warmup: 0, repeat: 2, name: 'lr', repo, out, serverArgs: [], log: () => {} });
  assert.deepEqual(report.results.map((r) => `${r.scenario}${r.round}`), ['baseline1', 'recommend1', 'baseline2', 'recommend2']);
  for (const i of [1, 3]) assert.equal(report.results[i].ratioToBaseline, report.results[i].rps / report.results[i - 1].rps);
  assert.equal(report.summary.find((x) => x.scenario === 'recommend')!.runs, 2);
  assert.equal(report.failed, false);
});
