/**
 * bench:incremental — the paper's incremental scenario on Tiktok. A plain student trained on the
 * train split (fixed budget, no validation-based selection) is exported and served; the
 * validation split's interactions are streamed through POST /interactions (concurrent clients,
 * one interaction per request); then one background fine-tuning round. Test Recall/NDCG@20
 * (train and validation items masked) before streaming, after streaming (immediate updates, and
 * after the round), and after a full retrain on train + the log with the same budget.
 * Also: acknowledgement and immediate-update latency (p50/p99), interactions/s sustained.
 *
 * The fine-tuning round's settings are chosen first without looking at the test split: for
 * each candidate, half of the validation users' interactions (A) are streamed and the round
 * run, and the candidate is scored by Recall@20 on the other half's (B) validation items.
 *
 *   npm run bench:incremental -- [--data ../shared/data/tiktok] [--epochs 50] [--clients 16] [--no-tune]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { loadDataset } from '../data/dataset.js';
import { initEngine } from '../trainer/engine/backend.js';
import { evaluateEmbeddings } from '../trainer/eval.js';
import { createServer } from '../server/server.js';
import type { ServingModel } from '../server/serving/serving-model.js';
import { ONLINE_DEFAULTS, type OnlineConfig } from '../server/online/online-learner.js';
import { evaluate } from '../trainer/eval.js';
import type { Csr } from '../data/dataset.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: '../shared/data/tiktok' },
    epochs: { type: 'string', default: '50' },
    clients: { type: 'string', default: '16' },
    'no-tune': { type: 'boolean', default: false },
  },
});
const out = resolve('bench/out/incremental');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const repo = join(out, 'models');
const logDir = join(out, 'interactions');
const cli = resolve('dist/cli/promptmm.js');
const budget = ['--student-only', '--epochs', a.epochs!, '--eval-every', '100000'];

function run(args: string[]): string {
  const t = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`promptmm ${args.join(' ')} failed:\n${r.stderr.slice(-2000)}`);
  process.stderr.write(`  promptmm ${args.slice(0, 3).join(' ')} … ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  return r.stdout;
}
const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

await initEngine('auto');
const data = loadDataset(resolve(a.data!), { features: false });
const evalModel = (m: ServingModel) => {
  const d = m.dim;
  const emb = new Float32Array((data.nUsers + data.nItems) * d);
  emb.set(m.userVectors.subarray(0, data.nUsers * d));
  emb.set(m.itemVectors, data.nUsers * d);
  const r = evaluateEmbeddings(emb, d, data, { split: 'test', ks: [20] });
  return { 'recall@20': r['recall@20'], 'ndcg@20': r['ndcg@20'] };
};

run(['train', '--data', data.dir, '--name', 'base', '--repo', repo, ...budget]);
run(['export', '--name', 'base', '--repo', repo]);

// Round settings chosen on validation halves: stream half A, score on half B's validation items.
const valUsers = [...new Set(data.val.users)].sort((x, y) => x - y);
const inA = new Set(valUsers.filter((_, n) => n % 2 === 0));
const onlyB = (c: Csr): Csr => {
  const indptr = new Int32Array(c.indptr.length);
  const cols: number[] = [];
  for (let u = 0; u + 1 < c.indptr.length; u++) {
    if (!inA.has(u)) for (let p = c.indptr[u]; p < c.indptr[u + 1]; p++) cols.push(c.indices[p]);
    indptr[u + 1] = cols.length;
  }
  return { indptr, indices: Int32Array.from(cols) };
};
const dataB = { ...data, valByUser: onlyB(data.valByUser) };
const streamA = Array.from(data.val.users, (u, n) => ({ user: String(u), item: String(data.val.items[n]) })).filter((x) => inA.has(Number(x.user)));
const candidates: Partial<OnlineConfig>[] = [];
for (const roundLr of [0.02, 0.05, 0.1, 0.2]) for (const roundEpochs of [5, 10]) for (const replay of [1, 4]) candidates.push({ roundLr, roundEpochs, replay });
const tuning: { config: Partial<OnlineConfig>; valBRecall: number }[] = [];
let chosen: Partial<OnlineConfig> = { roundLr: ONLINE_DEFAULTS.roundLr, roundEpochs: ONLINE_DEFAULTS.roundEpochs, replay: ONLINE_DEFAULTS.replay };
if (!a['no-tune']) {
  for (const config of candidates) {
    const t = await createServer(
      { name: 'base', repo, host: '127.0.0.1', port: 0, retrieval: 'exact', providers: ['cpu'], pollSeconds: 0, token: 't', logDir: join(out, `tune-${tuning.length}`), online: { roundEvery: 0, roundSeconds: 0, ...config } },
      pino({ level: 'warn' }),
    );
    for (const x of streamA) await t.online.ingest([x]);
    await t.online.round();
    const m = t.holder.model!;
    const r = evaluate(m.userVectors.subarray(0, data.nUsers * m.dim), m.itemVectors, m.dim, dataB, { split: 'val', ks: [20] });
    tuning.push({ config, valBRecall: r['recall@20'] });
    process.stderr.write(`  tune ${JSON.stringify(config)}: validation-B recall@20 ${r['recall@20'].toFixed(4)}\n`);
    await t.close();
  }
  chosen = tuning.reduce((b, x) => (x.valBRecall > b.valBRecall ? x : b)).config;
  process.stderr.write(`chosen on validation halves: ${JSON.stringify(chosen)}\n`);
}

const s = await createServer(
  { name: 'base', repo, host: '127.0.0.1', port: 0, retrieval: 'exact', providers: ['cpu'], pollSeconds: 0, token: 't', logDir, online: { roundEvery: 0, roundSeconds: 0, ...chosen } },
  pino({ level: 'warn' }),
);
const model = s.holder.model!;
const before = evalModel(model);
process.stderr.write(`before streaming: ${JSON.stringify(before)}\n`);

const ack: number[] = [];
const upd: number[] = [];
const response: number[] = [];
s.online.onTiming = (ackMs, updateMs) => {
  ack.push(ackMs);
  upd.push(updateMs);
};
const stream = Array.from(data.val.users, (u, n) => ({ user: String(u), item: String(data.val.items[n]) }));
let next = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Number(a.clients) }, async () => {
    while (next < stream.length) {
      const x = stream[next++];
      const tq = performance.now();
      const r = await s.app.inject({ method: 'POST', url: '/interactions', headers: { authorization: 'Bearer t' }, payload: { interactions: [x] } });
      if (r.statusCode !== 200 || r.json().accepted !== 1) throw new Error(`POST /interactions: ${r.statusCode} ${r.body}`);
      response.push(performance.now() - tq);
    }
  }),
);
const streamSeconds = (performance.now() - t0) / 1000;
const afterImmediate = evalModel(model);
process.stderr.write(`after streaming (immediate updates): ${JSON.stringify(afterImmediate)}\n`);
const tr = performance.now();
await s.online.round();
const roundSeconds = (performance.now() - tr) / 1000;
const afterRound = evalModel(model);
process.stderr.write(`after the fine-tuning round (${roundSeconds.toFixed(2)} s): ${JSON.stringify(afterRound)}\n`);
await s.close();

run(['train', '--data', data.dir, '--name', 'retrain', '--repo', repo, '--interactions', logDir, ...budget]);
const retrain = JSON.parse(run(['eval', '--name', 'retrain', '--repo', repo, '--split', 'test', '--json', '--ks', '20']));
process.stderr.write(`full retrain on train + log: ${JSON.stringify(retrain)}\n`);

const gain = (m: Record<string, number>, k: string) => m[k] - before[k as keyof typeof before];
const report = {
  date: new Date().toISOString(),
  data: data.dir,
  budget: `plain student, ${a.epochs} epochs, no validation-based selection (the validation split is what gets streamed)`,
  streamed: stream.length,
  roundSettings: { chosen, tunedOn: a['no-tune'] ? 'none (defaults)' : 'validation halves: stream A, Recall@20 on B', tuning },
  clients: Number(a.clients),
  test: { before, afterImmediate, afterRound, retrain: { 'recall@20': retrain['recall@20'], 'ndcg@20': retrain['ndcg@20'] } },
  recoveredShareOfRetrainGain: {
    'recall@20': { immediate: gain(afterImmediate, 'recall@20') / gain(retrain, 'recall@20'), round: gain(afterRound, 'recall@20') / gain(retrain, 'recall@20') },
    'ndcg@20': { immediate: gain(afterImmediate, 'ndcg@20') / gain(retrain, 'ndcg@20'), round: gain(afterRound, 'ndcg@20') / gain(retrain, 'ndcg@20') },
  },
  latencyMs: {
    // what a client waits for its acknowledgement: the whole POST, queueing behind the other clients included
    response: { p50: q(response, 0.5), p99: q(response, 0.99) },
    // the durable-append part of it (the log's group commit)
    logWait: { p50: q(ack, 0.5), p99: q(ack, 0.99) },
    immediateUpdate: { p50: q(upd, 0.5), p99: q(upd, 0.99) },
  },
  interactionsPerSecond: stream.length / streamSeconds,
  roundSeconds,
};
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/incremental-${report.date.slice(0, 10)}${a['no-tune'] ? '-untuned' : ''}.json`;
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`${JSON.stringify(report, null, 2)}\n(written to ${file})\n`);
