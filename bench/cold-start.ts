/**
 * bench:cold-start — new items served from their features (issue 18, "Measured: cold-start items").
 *
 * On each dataset: 20% of the items (seeded) are hidden from the whole training run (removed from
 * the catalog with all their interactions; the rest renumbered), the plain LightGCN student
 * (`--student-only`, capped epochs: the CPU is shared) and the item encoder are trained and
 * exported; the hidden items are added through PUT /items on a server of that bundle (HTTP on
 * loopback: placed by its item_encoder.onnx, logged, inserted), and the test interactions on
 * hidden items are scored: Recall@20 / NDCG@20 counting only those, all items ranked (old + new;
 * the user's train and validation items masked, as the test evaluation does). Against (a) random
 * (the expectation, k / candidates), (b) most popular (train counts: new items have none),
 * (c) features-only kNN (cosine of z-scored raw features to the user's train items: the user's mean
 * of unit item vectors), (d) the oracle: the same student trained on the full data (the hidden
 * items' train interactions included). Also every encoder design's validation figures (held-out
 * training items of the reduced run, `trainer/models/item-encoder.ts`) and test figures (their
 * plain forward), for choosing the default on validation.
 *
 *   npm run bench:cold-start -- [--datasets tiktok,scientific] [--epochs 60] [--share 0.2] [--seed 2024] [--criterion overall|new-items]
 *
 * Writes bench/results/cold-start-<date>.json and, per dataset, dumps for bench/paired-users.py under
 * bench/out/cold-start/<ds>/ (dump-encoder, dump-knn and a data folder whose test split holds only
 * the interactions on new items): `python3 bench/paired-users.py DUMP_A DUMP_B --data DIR`.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { mkdirSync, rmSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { writeNpy } from '../core/npy.js';
import { Rng } from '../core/rng.js';
import { initEngine } from '../trainer/engine/backend.js';
import { rankNewItems, normalization, type RankingFigures } from '../trainer/models/item-encoder.js';
import { fitForStudent, ITEM_ENCODER_DEFAULTS, studentTables } from '../trainer/stages/item-encoder.js';
import { studentCheckpointDir } from '../trainer/stages/student.js';
import { encodeReference } from '../repository/onnx-item-encoder-graph.js';
import pino from 'pino';
import { createServer } from '../server/server.js';
import { ITEM_ENCODER_DESIGNS, type ItemEncoderCriterion } from '../core/defaults.js';
import { scriptArgs } from '../core/script-args.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    datasets: { type: 'string', default: 'tiktok,scientific' },
    root: { type: 'string', default: '../shared/data' },
    epochs: { type: 'string', default: '60' },
    share: { type: 'string', default: '0.2' },
    seed: { type: 'string', default: '2024' },
    'skip-designs': { type: 'boolean', default: false },
    tag: { type: 'string', default: '' },
    'encoder-epochs': { type: 'string', default: '30' },
    // what the encoder's scale / neighbors settings are chosen by (--item-encoder-criterion); the default is the served rule
    criterion: { type: 'string', default: 'overall' },
  },
});
const K = 20;
/** The in-process server's token (it listens on loopback only for the bench's own PUTs). */
const PUT_TOKEN = 'cold-start-bench';
const epochs = a.epochs!;
const share = Number(a.share);
const seed = Number(a.seed);
const cli = fileURLToPath(new URL('../cli/promptmm.js', import.meta.url));
const outRoot = resolve('bench/out/cold-start');
const loads: number[] = [];
const sampleLoad = () => loads.push(+loadavg()[0].toFixed(2));

function run(args: string[]): string {
  const t = performance.now();
  sampleLoad();
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`promptmm ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  process.stderr.write(`  promptmm ${args.slice(0, 3).join(' ')} … ${((performance.now() - t) / 1000).toFixed(1)} s (load ${loadavg()[0].toFixed(2)})\n`);
  sampleLoad();
  return r.stdout;
}

/** The .inter lines (header kept), parsed. */
function interLines(dir: string, name: string): { header: string; rows: { u: number; i: number; x: number; line: string[] }[]; cols: Record<string, number> } {
  const text = readFileSync(join(dir, `${name}.inter`), 'utf8').replace(/\r/g, '');
  const [header, ...lines] = text.split('\n').filter((l) => l.length);
  const hs = header.split('\t');
  const cols = Object.fromEntries(hs.map((h, k) => [h, k]));
  const rows = lines.map((l) => {
    const f = l.split('\t');
    return { u: Number(f[cols.userID]), i: Number(f[cols.itemID]), x: Number(f[cols.x_label]), line: f };
  });
  return { header, rows, cols };
}

/** The reduced dataset: hidden items removed (every split), the rest renumbered in order; their features. */
function writeReduced(full: Dataset, hidden: Uint8Array, dir: string): Int32Array {
  const { header, rows, cols } = interLines(full.dir, full.name);
  const newRow = new Int32Array(full.nItems).fill(-1);
  let n = 0;
  for (let i = 0; i < full.nItems; i++) if (!hidden[i]) newRow[i] = n++;
  mkdirSync(dir, { recursive: true });
  const out = [header];
  for (const r of rows) {
    if (hidden[r.i]) continue;
    const f = [...r.line];
    f[cols.itemID] = String(newRow[r.i]);
    out.push(f.join('\t'));
  }
  writeFileSync(join(dir, `${full.name}.inter`), out.join('\n') + '\n');
  for (const m of full.modalities) {
    const data = new Float32Array(n * m.dim);
    for (let i = 0; i < full.nItems; i++) if (newRow[i] >= 0) data.set(m.data.subarray(i * m.dim, (i + 1) * m.dim), newRow[i] * m.dim);
    writeNpy(join(dir, `${m.name}_feat.npy`), data, [n, m.dim]);
  }
  return newRow;
}

/** For paired-users.py: every train and validation line, and only the test lines on new items. */
function writeNewItemTest(full: Dataset, hidden: Uint8Array, dir: string): void {
  const { header, rows } = interLines(full.dir, full.name);
  mkdirSync(dir, { recursive: true });
  const out = [header, ...rows.filter((r) => r.x !== 2 || hidden[r.i]).map((r) => r.line.join('\t'))];
  writeFileSync(join(dir, `${full.name}.inter`), out.join('\n') + '\n');
}

/** Random ranking, in expectation: each truth item is in the top k with probability k / candidates. */
function randomFigures(full: Dataset, isNew: Uint8Array): RankingFigures {
  const rec: number[] = [];
  const nd: number[] = [];
  const rows: number[] = [];
  let interactions = 0;
  const disc = (r: number) => 1 / Math.log2(r + 2);
  for (let u = 0; u < full.nUsers; u++) {
    let want = 0;
    for (let p = full.testByUser.indptr[u]; p < full.testByUser.indptr[u + 1]; p++) if (isNew[full.testByUser.indices[p]]) want++;
    if (!want) continue;
    const masked = new Set<number>();
    for (const c of [full.trainByUser, full.valByUser]) for (let p = c.indptr[u]; p < c.indptr[u + 1]; p++) masked.add(c.indices[p]);
    const cand = full.nItems - masked.size;
    const kk = Math.min(K, cand);
    let dcg = 0;
    for (let r = 0; r < kk; r++) dcg += (want / cand) * disc(r);
    let idcg = 0;
    for (let r = 0; r < Math.min(K, want); r++) idcg += disc(r);
    rec.push(kk / cand);
    nd.push(dcg / idcg);
    rows.push(u);
    interactions += want;
  }
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  return { recall: mean(rec), ndcg: mean(nd), users: rows.length, interactions, perUserRecall: Float64Array.from(rec), perUserNdcg: Float64Array.from(nd), userRows: Int32Array.from(rows) };
}

/** Unit vectors of the z-scored, concatenated features of every item: [nItems, D]. */
function unitFeatures(full: Dataset): { x: Float32Array; width: number } {
  const width = full.modalities.reduce((s, m) => s + m.dim, 0);
  const x = new Float32Array(full.nItems * width);
  let off = 0;
  for (const m of full.modalities) {
    const { mean, invStd } = normalization(m, full.nItems);
    for (let r = 0; r < full.nItems; r++) for (let c = 0; c < m.dim; c++) x[r * width + off + c] = (m.data[r * m.dim + c] - mean[c]) * invStd[c];
    off += m.dim;
  }
  for (let r = 0; r < full.nItems; r++) {
    let s = 0;
    for (let c = 0; c < width; c++) s += x[r * width + c] ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let c = 0; c < width; c++) x[r * width + c] *= inv;
  }
  return { x, width };
}

const summary = (f: RankingFigures) => ({ recall: +f.recall.toFixed(5), ndcg: +f.ndcg.toFixed(5), users: f.users, interactions: f.interactions });

/** Paired per-user differences a − b (the same users in the same order), with the standard error. */
function paired(x: RankingFigures, y: RankingFigures): { meanDiff: number; se: number } {
  const n = x.perUserRecall.length;
  const d = Array.from(x.perUserRecall, (v, i) => v - y.perUserRecall[i]);
  const m = d.reduce((s, v) => s + v, 0) / n;
  const sd = Math.sqrt(d.reduce((s, v) => s + (v - m) ** 2, 0) / (n - 1));
  return { meanDiff: +m.toFixed(5), se: +(sd / Math.sqrt(n)).toFixed(5) };
}

/** Paired per-user a − oracle / 2: the goal's margin (≥ 0 when the encoder reaches half the oracle's recall). */
function pairedHalf(x: RankingFigures, o: RankingFigures): { meanDiff: number; se: number } {
  return paired(x, { ...o, perUserRecall: Float64Array.from(o.perUserRecall, (v) => v / 2) });
}

async function bench(ds: string): Promise<Record<string, unknown>> {
  const dir = resolve(a.root!, ds);
  const work = join(outRoot, ds);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const repo = join(work, 'models');
  mkdirSync(repo);
  const full = loadDataset(dir);
  const rng = new Rng(seed + 18);
  const order = Int32Array.from({ length: full.nItems }, (_, i) => i);
  rng.shuffle(order);
  const nHidden = Math.round(full.nItems * share);
  const hidden = new Uint8Array(full.nItems);
  for (let k = 0; k < nHidden; k++) hidden[order[k]] = 1;
  const reducedDir = join(work, 'data-reduced');
  const newRow = writeReduced(full, hidden, reducedDir);
  writeNewItemTest(full, hidden, join(work, 'data-new-item-test'));
  process.stderr.write(`${ds}: ${full.nItems} items, ${nHidden} hidden; ${full.nUsers} users\n`);
  const budget = ['--student-only', '--epochs', epochs, '--seed', String(seed), '--no-progress'];
  const encoderEpochs = Number(a['encoder-epochs']);

  // the model the server gets, and its item encoder (the default design), exported
  const t0 = performance.now();
  const trained = JSON.parse(run(['train', '--data', reducedDir, '--name', 'cold', '--repo', repo, ...budget, '--item-encoder-epochs', String(encoderEpochs), '--item-encoder-criterion', a.criterion!]));
  const trainSeconds = (performance.now() - t0) / 1000;
  const exported = JSON.parse(run(['export', '--name', 'cold', '--repo', repo]));
  // the oracle: the same budget on the full data
  const t1 = performance.now();
  const oracleRun = JSON.parse(run(['train', '--data', dir, '--name', 'oracle', '--repo', repo, ...budget, '--no-item-encoder']));
  const oracleSeconds = (performance.now() - t1) / 1000;

  const masks = [full.trainByUser, full.valByUser];
  const rank = (users: Float32Array, items: Float32Array, dim: number) => rankNewItems(users, items, dim, full.nItems, full.testByUser, masks, hidden, K);

  // the served model: its user and item tables at the full dataset's rows; the new items added
  // through PUT /items over HTTP (the route's checks, the encoder run by the server, the durable
  // log, the ANN insert), their vectors then read back from the served version
  const server = await createServer({ name: 'cold', repo, host: '127.0.0.1', port: 0, retrieval: 'ann', providers: ['cpu'], pollSeconds: 0, token: PUT_TOKEN, online: { roundEvery: 0, roundSeconds: 0 } }, pino({ level: 'warn' }));
  const address = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const model = server.holder.model!;
  const d = model.dim;
  const users = new Float32Array(full.nUsers * d);
  users.set(model.userVectors.subarray(0, Math.min(model.nUsers, full.nUsers) * d));
  const items = new Float32Array(full.nItems * d);
  const hiddenRows: number[] = [];
  for (let i = 0; i < full.nItems; i++) {
    if (newRow[i] >= 0) items.set(model.itemVectors.subarray(newRow[i] * d, (newRow[i] + 1) * d), i * d);
    else hiddenRows.push(i);
  }
  if (!model.embedder) throw new Error(`${exported.dir}: no item encoder in the bundle`);
  const putMs: number[] = [];
  const te = performance.now();
  for (const i of hiddenRows) {
    const body = JSON.stringify({ features: Object.fromEntries(full.modalities.map((m) => [m.name, Array.from(m.data.subarray(i * m.dim, (i + 1) * m.dim))])) });
    const t = performance.now();
    const r = await fetch(`${address}/items/new-${i}`, { method: 'PUT', headers: { authorization: `Bearer ${PUT_TOKEN}`, 'content-type': 'application/json' }, body });
    if (r.status !== 200) throw new Error(`PUT /items/new-${i}: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
    putMs.push(performance.now() - t);
  }
  const embedMs = performance.now() - te;
  const served = server.holder.model!;
  for (const i of hiddenRows) {
    const row = served.itemIndex.get(`new-${i}`)!;
    items.set(served.itemVectors.subarray(row * d, (row + 1) * d), i * d);
  }
  await server.close();
  putMs.sort((x, y) => x - y);
  const putLatency = { n: putMs.length, p50: +putMs[Math.floor(putMs.length / 2)].toFixed(2), p99: +putMs[Math.min(putMs.length - 1, Math.floor(putMs.length * 0.99))].toFixed(2) };
  const encoder = rank(users, items, d);
  // all test interactions (old and new items) with the new items in the catalog: what the encoder costs the old ones
  const allNew = new Uint8Array(full.nItems).fill(1);
  const overall = rankNewItems(users, items, d, full.nItems, full.testByUser, masks, allNew, K);

  // baselines
  const random = randomFigures(full, hidden);
  const pop = new Float32Array(full.nItems);
  for (let i = 0; i < full.nItems; i++) pop[i] = newRow[i] >= 0 ? full.itemPopularity[i] : 0; // what the server knows: new items have no train counts
  const popular = rank(new Float32Array(full.nUsers).fill(1), pop, 1);
  const { x: unit, width } = unitFeatures(full);
  const profile = new Float32Array(full.nUsers * width);
  for (let u = 0; u < full.nUsers; u++) {
    let n = 0;
    for (let p = full.trainByUser.indptr[u]; p < full.trainByUser.indptr[u + 1]; p++) {
      const it = full.trainByUser.indices[p];
      if (hidden[it]) continue; // history the cold-start model has: old items only
      n++;
      for (let c = 0; c < width; c++) profile[u * width + c] += unit[it * width + c];
    }
    if (n) for (let c = 0; c < width; c++) profile[u * width + c] /= n;
  }
  const knn = rank(profile, unit, width);
  const oracleTables = studentTables(studentCheckpointDir(repo, 'oracle'), full);
  const oracle = rank(oracleTables.users, oracleTables.items, oracleTables.dim);

  // dumps for bench/paired-users.py (test split = interactions on new items)
  for (const [name, U, I, w] of [['dump-encoder', users, items, d], ['dump-knn', profile, unit, width], ['dump-oracle', oracleTables.users, oracleTables.items, oracleTables.dim]] as const) {
    mkdirSync(join(work, name), { recursive: true });
    writeNpy(join(work, name, 'user_embeddings.npy'), U, [full.nUsers, w]);
    writeNpy(join(work, name, 'item_embeddings.npy'), I, [full.nItems, w]);
  }
  writeFileSync(
    join(work, 'per-user.json'),
    JSON.stringify({ users: Array.from(encoder.userRows), encoder: Array.from(encoder.perUserRecall), knn: Array.from(knn.perUserRecall), oracle: Array.from(oracle.perUserRecall), popular: Array.from(popular.perUserRecall), random: Array.from(random.perUserRecall) }),
  );

  // every design, on the reduced run's validation (held-out training items) and on the cold-start test (plain forward)
  const designs: Record<string, unknown> = {};
  if (!a['skip-designs']) {
    const reduced = loadDataset(reducedDir);
    for (const design of ITEM_ENCODER_DESIGNS) {
      const td = performance.now();
      sampleLoad();
      const { fit } = fitForStudent(reduced, studentCheckpointDir(repo, 'cold'), { ...ITEM_ENCODER_DEFAULTS, epochs: encoderEpochs, seed, design, criterion: a.criterion as ItemEncoderCriterion });
      const hf = full.modalities.map((m) => {
        const o = new Float32Array(hiddenRows.length * m.dim);
        hiddenRows.forEach((i, k) => o.set(m.data.subarray(i * m.dim, (i + 1) * m.dim), k * m.dim));
        return o;
      });
      const e = encodeReference(fit.weights, hf, hiddenRows.length);
      const tab = items.slice();
      hiddenRows.forEach((i, k) => tab.set(e.subarray(k * d, (k + 1) * d), i * d));
      const test = rank(users, tab, d);
      designs[design] = { validation: fit.validation, bestEpoch: fit.bestEpoch, lambda: fit.lambda, outputScale: fit.outputScale, outputNorm: fit.outputNorm, neighbors: fit.neighbors, grid: fit.grid, test: summary(test), vsKnn: paired(test, knn), vsOracle: paired(test, oracle), seconds: +((performance.now() - td) / 1000).toFixed(1) };
      process.stderr.write(`  design ${design}: valid cold R@20 ${fit.validation.recall.toFixed(4)} (cos ${fit.validation.cosine.toFixed(3)}), test cold R@20 ${test.recall.toFixed(4)}\n`);
      sampleLoad();
    }
  }

  const res = {
    dataset: ds,
    items: full.nItems,
    hiddenItems: nHidden,
    budget: { studentOnly: true, epochs: Number(epochs), seed, encoderEpochs, criterion: a.criterion },
    served: { design: trained.itemEncoder?.design, neighbors: trained.itemEncoder?.neighbors, outputScale: trained.itemEncoder?.outputScale, outputNorm: trained.itemEncoder?.outputNorm, itemEncoderOnnxBytes: statSync(join(exported.dir, 'item_encoder.onnx')).size, validation: trained.itemEncoder?.validation, studentVal: trained.student?.val, bestEpoch: trained.student?.bestEpoch, endedOn: trained.student?.endedOn, trainSeconds: +trainSeconds.toFixed(1), putAllNewItemsMs: +embedMs.toFixed(1), putLatencyMs: putLatency },
    oracleRun: { val: oracleRun.student?.val, test: oracleRun.student?.test, bestEpoch: oracleRun.student?.bestEpoch, endedOn: oracleRun.student?.endedOn, trainSeconds: +oracleSeconds.toFixed(1) },
    newItems: { encoder: summary(encoder), random: summary(random), popular: summary(popular), knn: summary(knn), oracle: summary(oracle) },
    encoderOverOracleRecall: +(encoder.recall / oracle.recall).toFixed(4),
    pairedRecall: { encoderMinusKnn: paired(encoder, knn), encoderMinusPopular: paired(encoder, popular), encoderMinusRandom: paired(encoder, random), oracleMinusEncoder: paired(oracle, encoder), encoderMinusHalfOracle: pairedHalf(encoder, oracle) },
    allTestInteractionsWithNewItemsInCatalog: summary(overall),
    designs,
    pairedUsersCommand: `python3 bench/paired-users.py ${join(work, 'dump-encoder')} ${join(work, 'dump-knn')} --data ${join(work, 'data-new-item-test')}`,
  };
  process.stderr.write(`${ds}: new-item test R@20 encoder ${encoder.recall.toFixed(4)}, knn ${knn.recall.toFixed(4)}, popular ${popular.recall.toFixed(4)}, random ${random.recall.toFixed(4)}, oracle ${oracle.recall.toFixed(4)} (encoder/oracle ${(encoder.recall / oracle.recall).toFixed(3)})\n`);
  return res;
}

await initEngine('auto');
const results: Record<string, unknown>[] = [];
const started = new Date().toISOString();
const file = `bench/results/cold-start-${started.slice(0, 10)}${a.tag ? '-' + a.tag : ''}.json`;
mkdirSync('bench/results', { recursive: true });
const reportOf = () => ({ bench: 'cold-start', started, finished: new Date().toISOString(), share, k: K, loadAverage1m: { min: Math.min(...loads), max: Math.max(...loads) }, note: 'machine shared with other jobs (see loadAverage1m)', results });
for (const ds of a.datasets!.split(',')) {
  results.push(await bench(ds));
  writeFileSync(file, JSON.stringify(reportOf(), null, 2) + '\n'); // after each dataset: a run cut short keeps what it finished
}
const report = { bench: 'cold-start', started, finished: new Date().toISOString(), share, k: K, loadAverage1m: { min: Math.min(...loads), max: Math.max(...loads) }, note: 'machine shared with other jobs (see loadAverage1m)', results };
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
console.log(JSON.stringify(report, null, 2));
process.stderr.write(`written ${file}\n`);
