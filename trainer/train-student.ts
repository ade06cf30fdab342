/**
 * The student's training loop: LightGCN + BPR with Adam, evaluation on the validation
 * split every few epochs, early stopping on validation Recall@20, the best state saved
 * as a checkpoint (with the optimizer state, for resuming), and a training curve.
 */
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { tf } from './engine.js';
import type { BackendInfo } from './engine.js';
import type { Dataset } from './dataset.js';
import { normalizedAdjacency } from './graph.js';
import { LightGcn } from './lightgcn.js';
import { BprSampler } from './sampler.js';
import { Rng } from './rng.js';
import { evaluateEmbeddings, type Metrics } from './eval.js';
import { loadCheckpoint, requireArray, saveCheckpoint, updateCheckpointFile, type NamedArray } from './checkpoint.js';
import { trainingCurveSvg, type EpochRecord } from './plot.js';
import type { Logger } from './log.js';

export interface StudentConfig {
  dim: number;
  layers: number;
  lr: number;
  reg: number;
  batch: number;
  epochs: number;
  seed: number;
  /** evaluate on validation every this many epochs */
  evalEvery: number;
  /** stop after this many evaluations without a better validation Recall@20 */
  patience: number;
  ks: number[];
}

export const STUDENT_DEFAULTS: StudentConfig = {
  dim: 64,
  layers: 2,
  lr: 1e-3,
  reg: 1e-4,
  batch: 2048,
  epochs: 400,
  seed: 2024,
  evalEvery: 5,
  patience: 10,
  ks: [20, 50],
};

/** What a student checkpoint's model.json carries besides the weights. */
export interface StudentMeta {
  kind: 'student';
  model: 'lightgcn';
  dataset: { name: string; dir: string; hash: string; nUsers: number; nItems: number };
  config: StudentConfig;
  backend: string;
  /** epoch of these weights (the best by validation so far) */
  epoch: number;
  /** last epoch trained when the checkpoint was written */
  lastEpoch: number;
  metrics: { val: Metrics; test: Metrics };
  secondsPerEpoch: number;
  adamStep: number;
  curve: EpochRecord[];
  createdAt: string;
}

export interface TrainResult {
  checkpointDir: string;
  bestEpoch: number;
  epochsRun: number;
  stoppedEarly: boolean;
  val: Metrics;
  test: Metrics;
  secondsPerEpoch: number;
  peakRssMiB: number;
}

export interface TrainOptions {
  checkpointDir: string;
  backend: BackendInfo;
  log: Logger;
  /** continue from the checkpoint in checkpointDir */
  resume?: boolean;
  /** draw a progress bar (default: when stderr is a terminal) */
  progress?: boolean;
}

const METRIC = 'recall@20';

export async function trainStudent(data: Dataset, config: StudentConfig, opts: TrainOptions): Promise<TrainResult> {
  const { log } = opts;
  let cfg = { ...config };
  let startEpoch = 1;
  let curve: EpochRecord[] = [];
  let best: { epoch: number; val: Metrics; test: Metrics } | null = null;
  let init: Float32Array | { seed: number } = { seed: cfg.seed };
  let adamState: NamedArray[] = [];
  let adamStep = 0;

  if (opts.resume) {
    const ck = loadCheckpoint<StudentMeta>(opts.checkpointDir);
    const m = ck.meta;
    if (m.dataset.hash !== data.hash) {
      throw new Error(`checkpoint ${opts.checkpointDir} was trained on dataset ${m.dataset.name} (hash ${m.dataset.hash.slice(0, 12)}), not on ${data.name} (hash ${data.hash.slice(0, 12)})`);
    }
    // The architecture comes from the checkpoint; the budget (epochs, patience) from the caller.
    cfg = { ...cfg, dim: m.config.dim, layers: m.config.layers };
    init = requireArray(ck, 'lightgcn/ego', [data.nUsers + data.nItems, cfg.dim]).data;
    adamState = [...ck.arrays.values()].filter((a) => a.name.startsWith('adam/'));
    adamStep = m.adamStep;
    startEpoch = m.epoch + 1;
    curve = m.curve.filter((r) => r.epoch <= m.epoch);
    best = { epoch: m.epoch, val: m.metrics.val, test: m.metrics.test };
    log.info({ checkpoint: opts.checkpointDir, epoch: m.epoch, val: m.metrics.val }, 'resuming from checkpoint');
  }

  const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
  const model = new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: cfg.dim, layers: cfg.layers }, graph, init);
  const optimizer = tf.train.adam(cfg.lr);
  if (adamState.length) await restoreAdam(optimizer, model, adamState, adamStep);
  const rng = new Rng(cfg.seed + startEpoch * 7919); // a resumed run draws fresh samples, reproducibly
  const sampler = new BprSampler(data.train.users, data.train.items, data.trainByUser, data.nItems, rng);
  const batches = Math.ceil(sampler.size / cfg.batch);
  const showBar = opts.progress ?? Boolean(process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format: 'epoch {epoch} |{bar}| {value}/{total} batches | loss {loss} | {speed} batches/s | best val R@20 {best}',
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;

  log.info(
    { dataset: data.name, users: data.nUsers, items: data.nItems, train: sampler.size, edges: graph.indices.length / 2, backend: opts.backend.backend, config: cfg },
    'training LightGCN student',
  );

  let bad = 0;
  let stoppedEarly = false;
  let lastEpoch = startEpoch - 1;
  const trainSeconds: number[] = [];
  try {
    for (let epoch = startEpoch; epoch <= cfg.epochs; epoch++) {
      const t0 = performance.now();
      sampler.shuffle();
      let lossSum = 0;
      bar?.start(batches, 0, { epoch, loss: '-', speed: '-', best: best ? best.val[METRIC].toFixed(4) : '-' });
      for (let b = 0; b < batches; b++) {
        const t = sampler.batch(b * cfg.batch, cfg.batch);
        const loss = optimizer.minimize(() => model.bprLoss(t, cfg.reg), true, [model.ego]);
        lossSum += loss!.dataSync()[0];
        loss!.dispose();
        const elapsed = (performance.now() - t0) / 1000;
        bar?.update(b + 1, { loss: (lossSum / (b + 1)).toFixed(4), speed: ((b + 1) / elapsed).toFixed(1) });
      }
      bar?.stop();
      const seconds = (performance.now() - t0) / 1000;
      trainSeconds.push(seconds);
      lastEpoch = epoch;
      const record: EpochRecord = { epoch, loss: lossSum / batches, seconds };
      curve.push(record);
      const evaluate = epoch % cfg.evalEvery === 0 || epoch === cfg.epochs;
      if (!evaluate) {
        log.debug({ epoch, loss: record.loss, seconds }, 'epoch');
        continue;
      }
      const emb = model.finalEmbeddings();
      const val = evaluateEmbeddings(emb, cfg.dim, data, { split: 'val', ks: cfg.ks });
      record.val = val;
      const improved = !best || val[METRIC] > best.val[METRIC];
      log.info({ epoch, loss: round(record.loss), seconds: round(seconds), val: roundAll(val), improved }, 'epoch');
      if (improved) {
        const test = evaluateEmbeddings(emb, cfg.dim, data, { split: 'test', ks: cfg.ks });
        best = { epoch, val, test };
        bad = 0;
        const meta = studentMeta(data, cfg, opts.backend, best, epoch, mean(trainSeconds), optimizer, curve);
        saveCheckpoint(opts.checkpointDir, meta, [
          { name: 'lightgcn/ego', shape: [data.nUsers + data.nItems, cfg.dim], data: model.egoValues() },
          ...(await adamArrays(optimizer)),
        ]);
      } else if (++bad >= cfg.patience) {
        stoppedEarly = true;
        log.info({ epoch, bestEpoch: best!.epoch, patience: cfg.patience }, 'early stop: validation Recall@20 did not improve');
        break;
      }
    }
  } finally {
    bar?.stop();
    model.dispose();
    optimizer.dispose();
  }
  if (!best) throw new Error('no evaluation ran (epochs must be at least 1)');

  // The weights on disk are the best epoch's; the curve of the whole run goes beside them.
  const secondsPerEpoch = mean(trainSeconds);
  await writeCurve(opts.checkpointDir, curve, `LightGCN student on ${data.name} (best epoch ${best.epoch})`);
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  log.info({ bestEpoch: best.epoch, val: roundAll(best.val), test: roundAll(best.test), secondsPerEpoch: round(secondsPerEpoch), peakRssMiB: Math.round(peakRssMiB) }, 'training finished');
  return {
    checkpointDir: opts.checkpointDir,
    bestEpoch: best.epoch,
    epochsRun: lastEpoch - startEpoch + 1,
    stoppedEarly,
    val: best.val,
    test: best.test,
    secondsPerEpoch,
    peakRssMiB,
  };
}

function studentMeta(
  data: Dataset,
  cfg: StudentConfig,
  backend: BackendInfo,
  best: { epoch: number; val: Metrics; test: Metrics },
  lastEpoch: number,
  secondsPerEpoch: number,
  optimizer: tf.AdamOptimizer,
  curve: EpochRecord[],
): StudentMeta {
  return {
    kind: 'student',
    model: 'lightgcn',
    dataset: { name: data.name, dir: data.dir, hash: data.hash, nUsers: data.nUsers, nItems: data.nItems },
    config: cfg,
    backend: backend.backend,
    epoch: best.epoch,
    lastEpoch,
    metrics: { val: best.val, test: best.test },
    secondsPerEpoch,
    adamStep: adamIterations(optimizer),
    curve,
    createdAt: new Date().toISOString(),
  };
}

/** Writes curve.json and curve.svg into the checkpoint folder. */
export async function writeCurve(dir: string, curve: EpochRecord[], title: string): Promise<void> {
  updateCheckpointFile(dir, 'curve.json', JSON.stringify(curve, null, 1));
  updateCheckpointFile(dir, 'curve.svg', await trainingCurveSvg(curve, title));
}

function adamIterations(optimizer: tf.AdamOptimizer): number {
  return (optimizer as unknown as { iterations: number }).iterations ?? 0;
}

/** Adam's first and second moments, saved so that a resumed run continues the same optimisation. */
async function adamArrays(optimizer: tf.AdamOptimizer): Promise<NamedArray[]> {
  const weights = await optimizer.getWeights();
  const out: NamedArray[] = [];
  for (const w of weights) {
    if (w.tensor.rank === 0) continue; // the step count travels in the metadata
    out.push({ name: `adam/${w.name}`, shape: w.tensor.shape, data: (await w.tensor.data()) as Float32Array });
  }
  return out;
}

async function restoreAdam(optimizer: tf.AdamOptimizer, model: LightGcn, arrays: NamedArray[], step: number): Promise<void> {
  const find = (suffix: string) => arrays.find((a) => a.name === `adam/${model.ego.name}/${suffix}`);
  const m = find('m');
  const v = find('v');
  if (!m || !v) return;
  await optimizer.setWeights([
    { name: 'iter', tensor: tf.scalar(step, 'int32') },
    { name: `${model.ego.name}/m`, tensor: tf.tensor(m.data, m.shape) },
    { name: `${model.ego.name}/v`, tensor: tf.tensor(v.data, v.shape) },
  ]);
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

function roundAll(m: Metrics): Metrics {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v)]));
}

export function studentCheckpointDir(repo: string, name: string): string {
  return join(repo, name, 'checkpoints', 'student');
}
