/**
 * bench:recall — Recall@20 of the server's ann path against its exact path over every user of
 * a model's newest bundle, exactly as /recommend answers (seen items excluded), at several ef.
 *
 *   npm run bench:recall -- [--name tiktok] [--repo models] [--users N] [--efs 50,100,200]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { listVersions, versionDir } from '../export/repository.js';
import { recommend } from '../server/recommender.js';
import { loadServingModel } from '../server/serving-model.js';

const { values: a } = parseArgs({
  options: {
    name: { type: 'string', default: 'tiktok' },
    repo: { type: 'string', default: 'models' },
    users: { type: 'string' },
    efs: { type: 'string', default: '20,50,100,200' },
  },
});
const version = listVersions(a.repo!, a.name!).at(-1);
if (version === undefined) throw new Error(`no bundle of ${a.name} in ${a.repo}: run promptmm export --name ${a.name}`);
const model = await loadServingModel(versionDir(a.repo!, a.name!, version), { providers: ['cpu'], log: pino({ level: 'warn' }) });
const ids = [...model.userIndex.keys()].filter((u) => model.seenOf(model.userIndex.get(u)!).length > 0);
const users = a.users ? ids.slice(0, Number(a.users)) : ids;
const K = 20;
const exact = new Map<string, Set<string>>();
for (const u of users) exact.set(u, new Set((await recommend(model, u, K, true, 'exact')).items.map((x) => x.item)));
const rows: { ef: number; recallAt20: number; meanMs: number }[] = [];
for (const ef of a.efs!.split(',').map(Number)) {
  model.ann.setEf(ef);
  let hits = 0;
  const t0 = performance.now();
  for (const u of users) for (const x of (await recommend(model, u, K, true, 'ann')).items) if (exact.get(u)!.has(x.item)) hits++;
  rows.push({ ef, recallAt20: +(hits / (users.length * K)).toFixed(4), meanMs: +((performance.now() - t0) / users.length).toFixed(4) });
  process.stderr.write(`ef ${ef}: recall@20 ${rows.at(-1)!.recallAt20}, ${rows.at(-1)!.meanMs} ms per user\n`);
}
await model.close();
const report = { date: new Date().toISOString(), name: a.name, version, users: users.length, k: K, note: 'ann vs exact as /recommend answers (seen items excluded)', rows };
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/serve-recall-${a.name}-${report.date.slice(0, 10)}.json`;
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`${JSON.stringify(report, null, 2)}\n(written to ${file})\n`);
