/**
 * bench:recall — Recall@20 of the server's ann path against its exact path over every user of
 * a model's newest bundle, exactly as /recommend answers (seen items excluded), at several ef;
 * then, with --updates N, the same after each of N interactions per user posted through the
 * online learner (one random catalog item each, as the load test posts), the server's caches on:
 * what a user sees while the server learns. With --rounds N, the same after each of N
 * fine-tuning rounds (each on --round-interactions random interactions), with the server's
 * re-index limits as given (--reindex-budget-ms, --rebuild-duty): what the items a round leaves
 * at their old place in the index cost (budget 0 and duty 1: every round refreshes the index
 * whole; a budget of 1e-9 and duty 0.001: next to nothing is refreshed).
 *
 *   npm run bench:recall -- [--name tiktok] [--repo models] [--users N] [--efs 50,100,200] [--updates 8]
 *                           [--rounds 3 --round-interactions 20000 --reindex-budget-ms 1000 --rebuild-duty 0.25]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { listVersions, versionDir } from '../repository/versions.js';
import { InteractionLog } from '../repository/interaction-log.js';
import { createMetrics } from '../server/common/metrics.js';
import { ModelHolder } from '../server/serving/model-holder.js';
import { ONLINE_DEFAULTS, OnlineLearner } from '../server/online/online-learner.js';
import { recommend } from '../server/serving/recommender.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { Rng } from '../core/rng.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string', default: 'tiktok' },
    repo: { type: 'string', default: 'models' },
    users: { type: 'string' },
    efs: { type: 'string', default: '20,50,100,200' },
    updates: { type: 'string', default: '0' },
    rounds: { type: 'string', default: '0' },
    'round-interactions': { type: 'string', default: '20000' },
    'reindex-budget-ms': { type: 'string', default: String(ONLINE_DEFAULTS.reindexBudgetMs) },
    'rebuild-duty': { type: 'string', default: String(ONLINE_DEFAULTS.rebuildDuty) },
    /** the report's file (default bench/results/serve-recall-NAME-DATE.json) */
    out: { type: 'string' },
  },
});
const version = listVersions(a.repo!, a.name!).at(-1);
if (version === undefined) throw new Error(`no bundle of ${a.name} in ${a.repo}: run promptmm export --name ${a.name}`);
const log = pino({ level: 'warn' });
const model = await loadServingModel(versionDir(a.repo!, a.name!, version), { providers: ['cpu'], log, cacheUsers: 100_000 });
const defaultEf = model.ef;
const ids = [...model.userIndex.keys()].filter((u) => model.seenOf(model.userIndex.get(u)!).length > 0);
const users = a.users ? ids.slice(0, Number(a.users)) : ids;
const K = 20;
const exact = new Map<string, Set<string>>();
for (const u of users) exact.set(u, new Set((await recommend(model, u, K, true, 'exact')).items.map((x) => x.item)));
const rows: { ef: number; recallAt20: number; meanMs: number }[] = [];
for (const ef of a.efs!.split(',').map(Number)) {
  model.ann.setEf(ef);
  model.candidates.clear(); // searched at the previous ef
  let hits = 0;
  const t0 = performance.now();
  for (const u of users) for (const x of (await recommend(model, u, K, true, 'ann')).items) if (exact.get(u)!.has(x.item)) hits++;
  rows.push({ ef, recallAt20: +(hits / (users.length * K)).toFixed(4), meanMs: +((performance.now() - t0) / users.length).toFixed(4) });
  process.stderr.write(`ef ${ef}: recall@20 ${rows.at(-1)!.recallAt20}, ${rows.at(-1)!.meanMs} ms per user\n`);
}

/** Recall@20 (ann vs exact) after each of `updates` interactions per user, at the bundle's ef. */
async function afterUpdates(updates: number): Promise<{ updates: number; recallAt20: number }[]> {
  model.ann.setEf(defaultEf);
  model.candidates.clear(); // searched at the last ef of the sweep
  const holder = new ModelHolder(log);
  holder.swap(model);
  const dir = mkdtempSync(join(tmpdir(), 'promptmm-recall-'));
  const online = new OnlineLearner(holder, InteractionLog.open(dir), { ...ONLINE_DEFAULTS, roundEvery: 0, roundSeconds: 0 }, createMetrics(), log);
  const rng = new Rng(1);
  const hits = new Float64Array(updates + 1);
  try {
    for (const u of users) {
      for (let n = 0; n <= updates; n++) {
        if (n > 0) await online.ingest([{ user: u, item: model.itemIds[rng.int(model.nItems)] }]);
        const want = new Set((await recommend(model, u, K, true, 'exact')).items.map((x) => x.item));
        for (const x of (await recommend(model, u, K, true, 'ann')).items) if (want.has(x.item)) hits[n]++;
      }
    }
  } finally {
    await online.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const out = Array.from(hits, (h, n) => ({ updates: n, recallAt20: +(h / (users.length * K)).toFixed(4) }));
  process.stderr.write(`after interactions (ef ${defaultEf}): ${out.map((r) => `${r.updates}: ${r.recallAt20}`).join(', ')}\n`);
  return out;
}
/** Recall@20 (ann vs exact) after each of `rounds` fine-tuning rounds, and what each round re-indexed. */
async function afterRounds(rounds: number): Promise<{ round: number; recallAt20: number; roundSeconds: number }[]> {
  model.ann.setEf(defaultEf);
  model.candidates.clear();
  const holder = new ModelHolder(log);
  holder.swap(model);
  const dir = mkdtempSync(join(tmpdir(), 'promptmm-recall-'));
  const cfg = { ...ONLINE_DEFAULTS, roundEvery: 0, roundSeconds: 0, reindexBudgetMs: Number(a['reindex-budget-ms']), rebuildDuty: Number(a['rebuild-duty']) };
  const online = new OnlineLearner(holder, InteractionLog.open(dir), cfg, createMetrics(), pino({ level: 'info' }, process.stderr));
  const rng = new Rng(2);
  const out: { round: number; recallAt20: number; roundSeconds: number }[] = [];
  try {
    for (let r = 1; r <= rounds; r++) {
      const batch = Array.from({ length: Number(a['round-interactions']) }, () => ({ user: users[rng.int(users.length)], item: model.itemIds[rng.int(model.nItems)] }));
      for (let i = 0; i < batch.length; i += 1000) await online.ingest(batch.slice(i, i + 1000));
      const t0 = performance.now();
      await online.round();
      const roundSeconds = +((performance.now() - t0) / 1000).toFixed(2);
      let hits = 0;
      for (const u of users) {
        const want = new Set((await recommend(model, u, K, true, 'exact')).items.map((x) => x.item));
        for (const x of (await recommend(model, u, K, true, 'ann')).items) if (want.has(x.item)) hits++;
      }
      out.push({ round: r, recallAt20: +(hits / (users.length * K)).toFixed(4), roundSeconds });
      process.stderr.write(`after round ${r} (budget ${cfg.reindexBudgetMs} ms, duty ${cfg.rebuildDuty}): recall@20 ${out.at(-1)!.recallAt20}\n`);
    }
  } finally {
    await online.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
const updates = Number(a.updates);
const afterInteractions = updates > 0 ? await afterUpdates(updates) : undefined;
const rounds = Number(a.rounds);
const afterRoundsRows = rounds > 0 ? { reindexBudgetMs: Number(a['reindex-budget-ms']), rebuildDuty: Number(a['rebuild-duty']), roundInteractions: Number(a['round-interactions']), rows: await afterRounds(rounds) } : undefined;
await model.close();
const report = { date: new Date().toISOString(), name: a.name, version, users: users.length, k: K, note: 'ann vs exact as /recommend answers (seen items excluded)', rows, afterInteractions, afterRounds: afterRoundsRows };
mkdirSync('bench/results', { recursive: true });
const file = a.out ?? `bench/results/serve-recall-${a.name}-${report.date.slice(0, 10)}.json`;
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`${JSON.stringify(report, null, 2)}\n(written to ${file})\n`);
