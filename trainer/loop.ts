/**
 * The training loop shared by the teacher, the plain student, the distilled student and the
 * sequential student: BPR triplet batches (or the model's own, e.g. next-item windows), Adam, validation every few epochs, early stopping on the validation
 * metric (`--valid-metric`, Recall@20 by default), the best state checkpointed (weights and
 * Adam moments, for resuming), a progress bar, and the training curve written next to the checkpoint.
 */
import cliProgress from 'cli-progress';
import { tf } from './engine/backend.js';
import type { Dataset } from '../data/dataset.js';
import { BprSampler, type Triplets } from '../data/sampler.js';
import { Rng } from '../core/rng.js';
import { evaluateEmbeddings, type Metrics, type Split } from './eval.js';
import { saveCheckpoint, updateCheckpointFile, updateCheckpointMeta, type LoadedCheckpoint, type NamedArray } from './checkpoint.js';
import { trainingCurveSvg, type EpochRecord } from '../core/plot.js';
import type { Logger } from '../core/log.js';
import { stableName } from './engine/names.js';
import { FusedAdam } from './engine/adam.js';
import { checkFields, checkValidMetric, defaultsFor } from '../core/defaults.js';

export interface LoopConfig {
  lr: number;
  batch: number;
  epochs: number;
  seed: number;
  /** evaluate on validation every this many epochs */
  evalEvery: number;
  /** stop after this many evaluations without a better validMetric */
  patience: number;
  ks: number[];
  /** `recall@K` or `ndcg@K` with K in ks: what early stopping and the best checkpoint follow */
  validMetric: string;
}

/** Where each loop setting is declared (core/defaults.ts). */
export const LOOP_FIELDS = { lr: 'lr', batch: 'batch', epochs: 'epochs', seed: 'seed', evalEvery: 'evalEvery', patience: 'patience', ks: 'ks', validMetric: 'validMetric' } as const;

/** An epoch's batches, in a fresh order after each shuffle(); BprSampler is one. */
export interface BatchSource<B> {
  readonly size: number;
  shuffle(): void;
  batch(start: number, n: number): B;
}

/** What the loop needs from a model; B is its batch (BPR triplets unless it brings its own batches). */
export interface Trainable<B = Triplets> {
  /** the variables Adam updates, in a fixed order (Adam's saved moments follow it) */
  variables: tf.Variable[];
  /** the batch loss; called inside optimizer.minimize, so it must stay differentiable */
  loss(batch: B): tf.Scalar;
  /** optional per-term values of the last loss() call, for the logs */
  lossTerms?(): Record<string, number>;
  /** final user+item embeddings [nUsers + nItems, dim] in evaluation mode (scored when there is no evaluate()) */
  embeddings?(): Float32Array;
  /** the split's metrics in evaluation mode, for a model whose user vectors depend on the split's input (a sequence) */
  evaluate?(split: Split, ks: number[]): Metrics;
  /** the training batches; absent: BPR triplets over the train split */
  batches?(rng: Rng): BatchSource<B>;
  dim: number;
  /** every array a checkpoint holds besides Adam's moments */
  arrays(): NamedArray[];
}

/** The checkpoint metadata every model kind carries. */
export interface LoopMeta {
  epoch: number;
  lastEpoch: number;
  metrics: { val: Metrics; test: Metrics };
  /** the validation metric `epoch` was the best of */
  validMetric: string;
  secondsPerEpoch: number;
  adamStep: number;
  curve: EpochRecord[];
  createdAt: string;
  /** set once the stage ran to its end (budget or early stop) */
  finished?: { lastEpoch: number; stoppedEarly: boolean; secondsPerEpoch: number };
}

/** The loop settings every stage starts from (Tiktok-scale defaults). */
export const LOOP_DEFAULTS: LoopConfig = defaultsFor(LOOP_FIELDS);

export interface LoopResult {
  bestEpoch: number;
  epochsRun: number;
  stoppedEarly: boolean;
  val: Metrics;
  test: Metrics;
  secondsPerEpoch: number;
}

export interface LoopOptions<M extends LoopMeta> {
  checkpointDir: string;
  log: Logger;
  /** title of the training-curve plot */
  title: string;
  /** the metadata to store beside the weights, given the loop's part of it */
  meta: (loop: LoopMeta) => M;
  /** a checkpoint to continue from (already checked to belong to this model and data) */
  resume?: LoadedCheckpoint<M>;
  progress?: boolean;
  /** label of the progress bar */
  label?: string;
}

export async function runLoop<M extends LoopMeta, B = Triplets>(data: Dataset, model: Trainable<B>, cfg: LoopConfig, opts: LoopOptions<M>): Promise<LoopResult> {
  const { log } = opts;
  checkFields(cfg, LOOP_FIELDS);
  checkValidMetric(cfg.validMetric, cfg.ks);
  const metric = cfg.validMetric;
  const resumedVal = opts.resume?.meta.metrics.val;
  if (resumedVal && typeof resumedVal[metric] !== 'number') {
    throw new Error(`--resume: the checkpoint at ${opts.checkpointDir} has no validation ${metric} (it has ${Object.keys(resumedVal).join(', ')}); resume with the --ks and --valid-metric it was trained with`);
  }
  let startEpoch = 1;
  let curve: EpochRecord[] = [];
  let best: { epoch: number; val: Metrics; test: Metrics } | null = null;
  const optimizer = new FusedAdam(cfg.lr);
  if (opts.resume) {
    const m = opts.resume.meta;
    restoreAdam(optimizer, model.variables, opts.resume, m.adamStep);
    startEpoch = m.epoch + 1;
    curve = m.curve.filter((r) => r.epoch <= m.epoch);
    best = { epoch: m.epoch, val: m.metrics.val, test: m.metrics.test };
    log.info({ checkpoint: opts.checkpointDir, epoch: m.epoch, val: m.metrics.val }, 'resuming from checkpoint');
  }
  const rng = new Rng(cfg.seed + startEpoch * 7919); // a resumed run draws fresh samples, reproducibly
  // without batches() B is Triplets (the default type argument): BPR triplets over the train split
  const sampler = model.batches?.(rng) ?? (new BprSampler(data.train.users, data.train.items, data.trainByUser, data.nItems, rng) as unknown as BatchSource<B>);
  const batches = Math.ceil(sampler.size / cfg.batch);
  const bar = opts.progress
    ? new cliProgress.SingleBar(
        {
          format: `${opts.label ?? 'train'} epoch {epoch} |{bar}| {value}/{total} batches | loss {loss} | {speed} batches/s | best val ${metric} {best}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;

  let bad = 0;
  let stoppedEarly = false;
  let lastEpoch = startEpoch - 1;
  const trainSeconds: number[] = [];
  const vars = model.variables;
  try {
    for (let epoch = startEpoch; epoch <= cfg.epochs; epoch++) {
      const t0 = performance.now();
      sampler.shuffle();
      let lossSum = 0;
      const termSums: Record<string, number> = {};
      bar?.start(batches, 0, { epoch, loss: '-', speed: '-', best: best ? best.val[metric].toFixed(4) : '-' });
      for (let b = 0; b < batches; b++) {
        const t = sampler.batch(b * cfg.batch, cfg.batch);
        const loss = optimizer.minimize(() => model.loss(t), vars);
        lossSum += loss.dataSync()[0];
        loss.dispose();
        for (const [k, v] of Object.entries(model.lossTerms?.() ?? {})) termSums[k] = (termSums[k] ?? 0) + v;
        bar?.update(b + 1, { loss: (lossSum / (b + 1)).toFixed(4), speed: ((b + 1) / ((performance.now() - t0) / 1000)).toFixed(1) });
      }
      bar?.stop();
      const seconds = (performance.now() - t0) / 1000;
      trainSeconds.push(seconds);
      lastEpoch = epoch;
      const record: EpochRecord = { epoch, loss: lossSum / batches, seconds };
      if (Object.keys(termSums).length) record.terms = Object.fromEntries(Object.entries(termSums).map(([k, v]) => [k, v / batches]));
      curve.push(record);
      if (epoch % cfg.evalEvery !== 0 && epoch !== cfg.epochs) {
        log.debug({ epoch, loss: record.loss, seconds }, 'epoch');
        continue;
      }
      const score = splitScorer(model, data, cfg.ks);
      const val = score('val');
      record.val = val;
      const improved = !best || val[metric] > best.val[metric];
      log.info({ epoch, loss: round(record.loss), terms: record.terms && roundAll(record.terms), seconds: round(seconds), val: roundAll(val), metric, improved }, `${opts.label ?? 'train'} epoch`);
      if (improved) {
        const test = score('test');
        best = { epoch, val, test };
        bad = 0;
        const meta = opts.meta({
          epoch,
          lastEpoch: epoch,
          metrics: { val, test },
          validMetric: metric,
          secondsPerEpoch: mean(trainSeconds),
          adamStep: optimizer.iterations,
          curve,
          createdAt: new Date().toISOString(),
        });
        saveCheckpoint(opts.checkpointDir, meta, [...model.arrays(), ...adamArrays(optimizer, vars)]);
      } else if (++bad >= cfg.patience) {
        stoppedEarly = true;
        log.info({ epoch, bestEpoch: best!.epoch, patience: cfg.patience }, `early stop: validation ${metric} did not improve`);
        break;
      }
    }
  } finally {
    bar?.stop();
    optimizer.dispose();
  }
  if (!best) throw new Error('no evaluation ran (epochs must be at least 1)');
  // The weights on disk are the best epoch's; the curve of the whole run goes beside them.
  const secondsPerEpoch = mean(trainSeconds);
  updateCheckpointMeta<LoopMeta>(opts.checkpointDir, (m) => ({ ...m, finished: { lastEpoch, stoppedEarly, secondsPerEpoch } }));
  updateCheckpointFile(opts.checkpointDir, 'curve.json', JSON.stringify(curve, null, 1));
  updateCheckpointFile(opts.checkpointDir, 'curve.svg', await trainingCurveSvg(curve, `${opts.title} (best epoch ${best.epoch})`));
  return {
    bestEpoch: best.epoch,
    epochsRun: lastEpoch - startEpoch + 1,
    stoppedEarly,
    val: best.val,
    test: best.test,
    secondsPerEpoch,
  };
}

/** One evaluation's metrics by split: the model's own evaluate(), else its embeddings, computed once for both splits. */
function splitScorer<B>(model: Trainable<B>, data: Dataset, ks: number[]): (split: Split) => Metrics {
  if (model.evaluate) return (split) => model.evaluate!(split, ks);
  if (!model.embeddings) throw new Error('a Trainable needs embeddings() or evaluate()');
  let emb: Float32Array | null = null;
  return (split) => evaluateEmbeddings((emb ??= model.embeddings!()), model.dim, data, { split, ks });
}

/** Adam's first and second moments, saved so that a resumed run continues the same optimisation. */
function adamArrays(optimizer: FusedAdam, vars: tf.Variable[]): NamedArray[] {
  return optimizer
    .getWeights(vars)
    .filter((w) => w.tensor.rank > 0) // the step count travels in the metadata
    .map((w) => ({ name: `adam/${stableName(w.name)}`, shape: w.tensor.shape, data: (w.tensor.dataSync() as Float32Array).slice() }));
}

function restoreAdam(optimizer: FusedAdam, vars: tf.Variable[], ck: LoadedCheckpoint<unknown>, step: number): void {
  const get = (v: tf.Variable, s: string) => ck.arrays.get(`adam/${stableName(v.name)}/${s}`);
  if (vars.some((v) => !get(v, 'm') || !get(v, 'v'))) return; // no optimizer state saved: fresh moments
  optimizer.setState(step, vars, vars.map((v) => get(v, 'm')!.data), vars.map((v) => get(v, 'v')!.data));
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/** 4 decimals: enough for the logs, short lines. */
function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

function roundAll(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v)]));
}
