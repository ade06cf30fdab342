/**
 * bench:search-cost — the ANN path's candidate search (unseen-search.ts) per user, for users
 * drawn as the load test draws them (Zipf by activity), on a model's newest bundle (issue 23):
 *
 * 1. µs per search of three ways to leave the user's seen items out, run one after the other for
 *    each drawn user (so that a busy machine slows all of them alike): the served one (over-fetch
 *    c + min(seen, c), the filtered repeat only when too few unseen come back), the filtered
 *    search alone, and an over-fetch past every seen item; and how often the repeat is needed.
 * 2. After one interaction (a random catalog item, as the load test posts; the online learner's
 *    graph and BPR steps on the user's vector): how often re-ranking the candidates searched for
 *    the old vector still gives the exact top 20, and how often the bound
 *    ‖u₁ − u₀‖ · max‖item‖ ≤ s₂₀(u₁) − min over the candidates of u₀·item proves it (every item
 *    outside the candidates scored at most that minimum under u₀, so under u₁ it stays below
 *    the 20th): the question of whether an interaction could keep the user's candidates
 *    instead of dropping them (candidate-cache.ts).
 *
 *   node dist/bench/search-cost.js [--name tiktok50] [--repo models] [--draws 3000] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { pino } from 'pino';
import { Rng } from '../core/rng.js';
import { scriptArgs } from '../core/script-args.js';
import { rowArray } from '../repository/hnsw-index.js';
import { listVersions, versionDir } from '../repository/versions.js';
import { ANN_CANDIDATES } from '../server/retrieval/candidate-cache.js';
import { rank } from '../server/retrieval/retriever.js';
import { searchUnseen } from '../server/retrieval/unseen-search.js';
import { ONLINE_DEFAULTS } from '../server/online/online-learner.js';
import { bprStep, graphStep, sampleNegative } from '../server/online/steps.js';
import { itemFilter } from '../server/serving/recommender.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import { loadTraffic, zipfUser } from '../loadtest/traffic.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string', default: 'tiktok50' },
    repo: { type: 'string', default: process.env.PROMPTMM_REPO ?? 'models' },
    draws: { type: 'string', default: '3000' },
    json: { type: 'string' },
  },
});
const version = listVersions(a.repo!, a.name!).at(-1);
if (version === undefined) {
  process.stderr.write(`search-cost: model ${a.name} has no bundle in ${a.repo}: train and export one first\n`);
  process.exit(2);
}
const model = await loadServingModel(versionDir(a.repo!, a.name!, version), { providers: ['cpu'], log: pino({ level: 'warn' }), cacheUsers: 0 });
const traffic = loadTraffic(a.repo!, a.name!);
const rng = new Rng(7);
/** A user as the load test draws one. */
const draw = (): string => zipfUser(traffic, rng);
const index = model.ann.local;
const d = model.dim;
const K = 20;
const c = ANN_CANDIDATES;
const draws = Number(a.draws);
const q: number[] = [];

// 1. The search, three ways.
type Search = (first: number, want: number, out: (row: number) => boolean, seen: number) => Int32Array;
const ways: Record<string, Search> = {
  served: (first, want, out) => searchUnseen(index, q, c, first, want, out),
  filteredOnly: (_first, _want, out) => Int32Array.from(index.searchKnn(q, c, (row) => !out(row)).neighbors),
  overFetchAllSeen: (_first, want, out, seen) => searchUnseen(index, q, c, Math.min(model.nItems, c + seen), want, out),
};
const us: Record<string, number> = Object.fromEntries(Object.keys(ways).map((w) => [w, 0]));
let repeats = 0;
let seenSum = 0;
for (let i = 0; i < draws; i++) {
  const user = draw();
  const row = model.userIndex.get(user)!;
  const f = itemFilter(model, user, row, true)!;
  seenSum += f.count;
  rowArray(model.userVectors.subarray(row * d, (row + 1) * d), 0, d, q);
  const first = Math.min(model.nItems, c + Math.min(f.count, c));
  const want = Math.min(K, model.nItems - f.count);
  let unseenFound = 0;
  for (const r of index.searchKnn(q, first).neighbors) if (!f.has(r)) unseenFound++;
  if (Math.min(unseenFound, c) < want) repeats++;
  for (const [w, search] of Object.entries(ways)) {
    const t0 = process.hrtime.bigint();
    search(first, want, f.has, f.count);
    us[w] += Number(process.hrtime.bigint() - t0) / 1000;
  }
}

// 2. The old candidates after one interaction.
let maxNorm = 0;
for (let i = 0; i < model.nItems; i++) {
  let s = 0;
  for (let k = 0; k < d; k++) s += model.itemVectors[i * d + k] ** 2;
  maxNorm = Math.max(maxNorm, Math.sqrt(s));
}
const after = Math.min(draws, 2000);
let proven = 0;
let provenWrong = 0;
let exactAnyway = 0;
for (let i = 0; i < after; i++) {
  const user = draw();
  const row = model.userIndex.get(user)!;
  const u0 = model.userVectors.slice(row * d, (row + 1) * d);
  const f0 = itemFilter(model, user, row, true)!;
  rowArray(u0, 0, d, q);
  const cands = searchUnseen(index, q, c, Math.min(model.nItems, c + Math.min(f0.count, c)), K, f0.has);
  let floor = Infinity;
  for (const r of cands) floor = Math.min(floor, model.score(u0, r));
  // The online learner's immediate update (online-learner.ts applyOne), on a random item.
  const item = rng.int(model.nItems);
  model.addSeen(row, item);
  graphStep(model, row, item, ONLINE_DEFAULTS.mix);
  const negatives = new Rng(i + 1);
  for (let s = 0; s < ONLINE_DEFAULTS.steps; s++) bprStep(model, row, item, sampleNegative(model, row, negatives), ONLINE_DEFAULTS.lr, ONLINE_DEFAULTS.reg);
  const u1 = model.userVectors.slice(row * d, (row + 1) * d);
  let moved = 0;
  for (let k = 0; k < d; k++) moved += (u1[k] - u0[k]) ** 2;
  const f1 = itemFilter(model, user, row, true)!;
  const reranked = rank(model, u1, Array.from(cands).filter((r) => !f1.has(r)), K);
  const unseenRows: number[] = [];
  for (let r = 0; r < model.nItems; r++) if (!f1.has(r)) unseenRows.push(r);
  const exact = rank(model, u1, unseenRows, K).map((x) => x.row).join();
  const same = reranked.map((x) => x.row).join() === exact;
  if (same) exactAnyway++;
  if (reranked.length >= K && reranked[K - 1].score >= floor + Math.sqrt(moved) * maxNorm) {
    proven++;
    if (!same) provenWrong++;
  }
  model.userVectors.set(u0, row * d); // the vector back (the item stays seen: harmless for later draws)
}

const result = {
  date: new Date().toISOString(),
  name: a.name,
  version,
  loadavg: loadavg().map((x) => +x.toFixed(2)),
  ef: model.ef,
  candidates: c,
  draws,
  meanSeenOfDrawn: +(seenSum / draws).toFixed(1),
  filteredRepeatShare: +(repeats / draws).toFixed(4),
  usPerSearch: Object.fromEntries(Object.entries(us).map(([w, x]) => [w, +(x / draws).toFixed(1)])),
  afterOneInteraction: {
    draws: after,
    maxItemNorm: +maxNorm.toFixed(3),
    rerankedOldCandidatesExactShare: +(exactAnyway / after).toFixed(4),
    boundProvesShare: +(proven / after).toFixed(4),
    provenButWrong: provenWrong,
  },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (a.json) writeFileSync(a.json, `${JSON.stringify(result, null, 2)}\n`);
