/**
 * bench:recall — Recall@20 of the server's ann path against its exact path over every user of
 * a model's newest bundle, exactly as /recommend answers (seen items excluded), at several ef;
 * then, with --updates N, the same after each of N interactions per user posted through the
 * online learner (one random catalog item each, as the load test posts), the server's caches on:
 * what a user sees while the server learns.
 *
 *   npm run bench:recall -- [--name tiktok] [--repo models] [--users N] [--efs 50,100,200] [--updates 8]
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
const updates = Number(a.updates);
const afterInteractions = updates > 0 ? await afterUpdates(updates) : undefined;
await model.close();
const report = { date: new Date().toISOString(), name: a.name, version, users: users.length, k: K, note: 'ann vs exact as /recommend answers (seen items excluded)', rows, afterInteractions };
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/serve-recall-${a.name}-${report.date.slice(0, 10)}.json`;
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`${JSON.stringify(report, null, 2)}\n(written to ${file})\n`);
