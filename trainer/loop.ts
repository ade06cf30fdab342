/**
 * The training loop shared by the teacher, the plain student, the distilled student and the
 * sequential student: BPR triplet batches (or the model's own, e.g. next-item windows), Adam, validation every few epochs, early stopping on a validation
 * plateau (`--valid-metric`, Recall@20 by default; plateau.ts), a progress bar. The best state
 * (weights, Adam moments, its embeddings) is kept in memory; test is evaluated once, from it, at
 * the end; the checkpoint is written at the end and every `--checkpoint-every` epochs when the
 * best changed (for `--resume`), with the training curve beside it.
 */
import cliProgress from 'cli-progress';
import { tf } from './engine/backend.js';
import type { Dataset } from '../data/dataset.js';
import { BprSampler, type Triplets } from '../data/sampler.js';
import { Rng } from '../core/rng.js';
import { evaluateEmbeddingsWithUsers, type Metrics, type Split } from './eval.js';
import { saveCheckpoint, updateCheckpointFile, type ExtraFiles, type LoadedCheckpoint, type NamedArray } from './checkpoint.js';
import { Plateau } from './plateau.js';
import { timed } from './timed.js';
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
  /** stop after this many evaluations in a row without progress (plateau.ts) */
  patience: number;
  /** progress: a gain of more than this many standard errors of the paired per-user differences */
  plateauZ: number;
  /** also stop once PLATEAU_DROP_AFTER evaluations made no progress and the last is this many standard errors below the reference (0: off) */
  plateauDrop: number;
  /** write the best state so far every this many epochs (0: only at the end) */
  checkpointEvery: number;
  ks: number[];
  /** `recall@K` or `ndcg@K` with K in ks: what early stopping and the best checkpoint follow */
  validMetric: string;
}

/** Where each loop setting is declared (core/defaults.ts). */
export const LOOP_FIELDS = { lr: 'lr', batch: 'batch', epochs: 'epochs', seed: 'seed', evalEvery: 'evalEvery', patience: 'patience', plateauZ: 'plateauZ', plateauDrop: 'plateauDrop', checkpointEvery: 'checkpointEvery', ks: 'ks', validMetric: 'validMetric' } as const;

/** An epoch's batches, in a fresh order after each shuffle(); BprSampler is one. */
export interface BatchSource<B> {
  readonly size: number;
  shuffle(): void;
  batch(start: number, n: number): B;
}

/** A split's metrics, and with `perUser` each evaluated user's value of that metric (the plateau rule's paired noise). */
export interface Scored {
  metrics: Metrics;
  perUser?: Float64Array;
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
  /** a split's metrics in evaluation mode, for a model whose user vectors depend on the split's input (a sequence) */
  evaluate?(split: Split, ks: number[], perUser: string): Scored;
  /** called as an epoch (1-based) starts; may return per-variable learning-rate multiples for it (KDSR's slow start of the item embeddings; ODMT's ramp-up reads the epoch) */
  startEpoch?(epoch: number): ReadonlyMap<tf.Variable, number> | undefined;
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
  /** test is evaluated once, at the end: a checkpoint written mid-run has none */
  metrics: { val: Metrics; test?: Metrics };
  /** the validation metric `epoch` was the best of */
  validMetric: string;
  secondsPerEpoch: number;
  adamStep: number;
  curve: EpochRecord[];
  createdAt: string;
  /** set once the stage ran to its end (budget or early stop) */
  finished?: { lastEpoch: number; stoppedEarly: boolean; secondsPerEpoch: number; endedOn?: EndedOn };
}

/** Why a run ended: its validation plateaued (early stop), or it reached `--epochs` first. */
export type EndedOn = 'plateau' | 'epoch cap';

/** The loop settings every stage starts from (Tiktok-scale defaults). */
export const LOOP_DEFAULTS: LoopConfig = defaultsFor(LOOP_FIELDS);

export interface LoopResult {
  bestEpoch: number;
  epochsRun: number;
  stoppedEarly: boolean;
  /** 'epoch cap': the budget ran out while validation still made progress */
  endedOn: EndedOn;
  val: Metrics;
  test: Metrics;
  secondsPerEpoch: number;
  /** where this run's time went, seconds: training epochs, evaluations (validation and the final test), checkpoint writes */
  time: { train: number; eval: number; checkpoint: number };
}

/**
 * The best validation state so far, in memory: what test is scored from at the end (its embeddings,
 * or for a model with evaluate() its variables' values, put back before scoring) and its checkpoint arrays.
 */
interface BestState {
  epoch: number;
  val: Metrics;
  embeddings: Float32Array | null;
  values: Float32Array[] | null;
  /** weights and Adam moments (copies: training on does not change them) */
  arrays: NamedArray[];
  adamStep: number;
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
  let best: BestState | null = null;
  const optimizer = new FusedAdam(cfg.lr);
  const vars = model.variables;
  const time = { train: 0, eval: 0, checkpoint: 0 };
  const trainSeconds: number[] = [];
  if (!model.evaluate && !model.embeddings) throw new Error('a Trainable needs embeddings() or evaluate()');
  const score = (split: Split, perUser: string): Scored & { emb: Float32Array | null } => {
    if (model.evaluate) return { emb: null, ...model.evaluate(split, cfg.ks, perUser) };
    const emb = model.embeddings!();
    return { emb, ...evaluateEmbeddingsWithUsers(emb, model.dim, data, { split, ks: cfg.ks, perUser }) };
  };
  const capture = (epoch: number, val: Metrics, embeddings: Float32Array | null): BestState => ({
    epoch,
    val,
    embeddings,
    values: embeddings ? null : vars.map((v) => (v.dataSync() as Float32Array).slice()),
    arrays: [...model.arrays(), ...adamArrays(optimizer, vars)],
    adamStep: optimizer.iterations,
    secondsPerEpoch: mean(trainSeconds),
  });
  if (opts.resume) {
    const m = opts.resume.meta;
    restoreAdam(optimizer, model.variables, opts.resume, m.adamStep);
    startEpoch = m.epoch + 1;
    curve = m.curve.filter((r) => r.epoch <= m.epoch);
    // The model holds the checkpoint's (best) weights: that is the best state until one beats it.
    best = capture(m.epoch, m.metrics.val, model.embeddings?.() ?? null);
    log.info({ checkpoint: opts.checkpointDir, epoch: m.epoch, val: m.metrics.val }, 'resuming from checkpoint');
  }
  let written = opts.resume ? opts.resume.meta.epoch : 0; // the best epoch the checkpoint on disk holds
  let lastWrite = startEpoch - 1;
  const write = (b: BestState, lastEpoch: number, test: Metrics | undefined, finished: LoopMeta['finished']) => {
    const meta = opts.meta({
      epoch: b.epoch,
      lastEpoch,
      metrics: test ? { val: b.val, test } : { val: b.val },
      validMetric: metric,
      secondsPerEpoch: b.secondsPerEpoch,
      adamStep: b.adamStep,
      curve,
      createdAt: new Date().toISOString(),
      ...(finished ? { finished } : {}),
    });
    const extra: ExtraFiles = finished ? { 'curve.json': JSON.stringify(curve, null, 1) } : {};
    time.checkpoint += timed(log, `${opts.label ?? 'train'} checkpoint written`, () => saveCheckpoint(opts.checkpointDir, meta, b.arrays, extra), { dir: opts.checkpointDir, epoch: b.epoch }).seconds;
    written = b.epoch;
  };

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

  // A resumed run starts a fresh plateau count: its first evaluation is the reference.
  const plateau = new Plateau(cfg.patience, cfg.plateauZ, cfg.plateauDrop);
  let stoppedEarly = false;
  let lastEpoch = startEpoch - 1;
  // this process's CPU time over the training epochs since the last evaluation (a busy machine inflates wall time far more)
  let cpuMicros = 0;
  let cpuEpochs = 0;
  try {
    for (let epoch = startEpoch; epoch <= cfg.epochs; epoch++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      sampler.shuffle();
      let lossSum = 0;
      const termSums: Record<string, number> = {};
      const lrScale = model.startEpoch?.(epoch);
      bar?.start(batches, 0, { epoch, loss: '-', speed: '-', best: best ? best.val[metric].toFixed(4) : '-' });
      for (let b = 0; b < batches; b++) {
        const t = sampler.batch(b * cfg.batch, cfg.batch);
        const loss = optimizer.minimize(() => model.loss(t), vars, lrScale);
        lossSum += loss.dataSync()[0];
        loss.dispose();
        for (const [k, v] of Object.entries(model.lossTerms?.() ?? {})) termSums[k] = (termSums[k] ?? 0) + v;
        bar?.update(b + 1, { loss: (lossSum / (b + 1)).toFixed(4), speed: ((b + 1) / ((performance.now() - t0) / 1000)).toFixed(1) });
      }
      bar?.stop();
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      cpuMicros += cpu.user + cpu.system;
      cpuEpochs++;
      trainSeconds.push(seconds);
      time.train += seconds;
      lastEpoch = epoch;
      const record: EpochRecord = { epoch, loss: lossSum / batches, seconds };
      if (Object.keys(termSums).length) record.terms = Object.fromEntries(Object.entries(termSums).map(([k, v]) => [k, v / batches]));
      curve.push(record);
      // let the event loop turn once an epoch: a worker thread's messages (the guard's plain student
      // beside the teacher, plain-thread.ts: its logs, its end) are handled as they come, not at the stage's end
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (epoch % cfg.evalEvery !== 0 && epoch !== cfg.epochs) {
        log.debug({ epoch, loss: record.loss, seconds, cpuSeconds: round((cpu.user + cpu.system) / 1e6) }, 'epoch');
        continue;
      }
      const { value: scored, seconds: evalSeconds } = timed(log, `${opts.label ?? 'train'} validation`, () => score('val', metric));
      time.eval += evalSeconds;
      const val = scored.metrics;
      record.val = val;
      const improved = !best || val[metric] > best.val[metric];
      if (improved) best = capture(epoch, val, scored.emb);
      const p = plateau.observe(scored.perUser!, improved);
      const cpuSecondsPerEpoch = round(cpuMicros / 1e6 / cpuEpochs);
      cpuMicros = 0;
      cpuEpochs = 0;
      log.info(
        { epoch, loss: round(record.loss), terms: record.terms && roundAll(record.terms), seconds: round(seconds), cpuSecondsPerEpoch, evalSeconds: round(evalSeconds), val: roundAll(val), metric, improved, progress: p.progress, gain: round(p.gain), se: round(p.se), stale: p.stale },
        `${opts.label ?? 'train'} epoch`,
      );
      if (cfg.checkpointEvery > 0 && epoch - lastWrite >= cfg.checkpointEvery && best!.epoch !== written) {
        write(best!, epoch, undefined, undefined);
        lastWrite = epoch;
      }
      if (p.stop) {
        stoppedEarly = true;
        if (p.dropped) log.info({ epoch, bestEpoch: best!.epoch, stale: p.stale, gain: round(p.gain), se: round(p.se), plateauDrop: cfg.plateauDrop }, `early stop: validation ${metric} fell more than ${cfg.plateauDrop} standard errors below its last progress after ${p.stale} evaluations without progress`);
        else log.info({ epoch, bestEpoch: best!.epoch, patience: cfg.patience, plateauZ: cfg.plateauZ }, `early stop: validation ${metric} made no progress (a gain of more than ${cfg.plateauZ} standard errors) in ${cfg.patience} evaluations`);
        break;
      }
    }
  } finally {
    bar?.stop();
    optimizer.dispose();
  }
  if (!best) throw new Error('no evaluation ran (epochs must be at least 1)');
  const endedOn: EndedOn = stoppedEarly ? 'plateau' : 'epoch cap';
  if (!stoppedEarly) log.warn({ epochs: cfg.epochs, bestEpoch: best.epoch }, `${opts.label ?? 'train'} reached the epoch cap (--epochs ${cfg.epochs}) while validation ${metric} was still making progress: it did not converge; a larger --epochs may do better`);
  const b = best;
  const { value: test, seconds: testSeconds } = timed(log, `${opts.label ?? 'train'} test evaluation (best epoch ${b.epoch})`, () => {
    if (b.embeddings) return evaluateEmbeddingsWithUsers(b.embeddings, model.dim, data, { split: 'test', ks: cfg.ks }).metrics;
    // the model goes back to its best epoch's weights (it ends the stage holding them, as the checkpoint does)
    tf.tidy(() => vars.forEach((v, n) => v.assign(tf.tensor(b.values![n], v.shape, 'float32'))));
    return model.evaluate!('test', cfg.ks, metric).metrics;
  });
  time.eval += testSeconds;
  const secondsPerEpoch = mean(trainSeconds);
  write(b, lastEpoch, test, { lastEpoch, stoppedEarly, secondsPerEpoch, endedOn });
  // The weights on disk are the best epoch's; the plot of the whole run goes beside them.
  updateCheckpointFile(opts.checkpointDir, 'curve.svg', await trainingCurveSvg(curve, `${opts.title} (best epoch ${b.epoch})`));
  return {
    bestEpoch: b.epoch,
    epochsRun: lastEpoch - startEpoch + 1,
    stoppedEarly,
    endedOn,
    val: b.val,
    test,
    secondsPerEpoch,
    time,
  };
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
