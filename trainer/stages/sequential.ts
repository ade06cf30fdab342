/**
 * The plain sequential student (`train --model sasrec`): SASRec on next-item windows of the
 * train split, full (or sampled) softmax cross-entropy, on the shared training loop (early
 * stopping on validation NDCG@10 by default, checkpoints, resume, curves, progress bar).
 */
import type { Dataset } from '../../data/dataset.js';
import { SequenceWindows, userSequences, type SequenceBatch } from '../../data/sequences.js';
import { Rng } from '../../core/rng.js';
import { checkFields, defaultsFor, modelDefaults, type SequentialModelName } from '../../core/defaults.js';
import { SEQ_KD_FIELDS, distilledHooks, idBranchValues, kdTrainable, odmtTeacherDir, type KdHooks, type SeqKdConfig } from './sequential-kd.js';
import { hasCheckpoint, type LoadedCheckpoint } from '../checkpoint.js';
import { LN_EPS, SasRec, type SasRecShape } from '../models/sasrec.js';
import { evaluateSequentialWithUsers } from '../sequential-eval.js';
import { LOOP_FIELDS, runLoop, type LoopConfig, type LoopMeta, type Trainable } from '../loop.js';
import { checkpointFor, datasetRef, finish, type DatasetRef, type TrainOptions, type TrainResult } from './student.js';

/** With the distillation's settings (issue 20, SeqKdConfig: seqKd names the teacher that trained the student). */
export interface SequentialConfig extends LoopConfig, SeqKdConfig {
  model: SequentialModelName;
  dim: number;
  seqBlocks: number;
  seqHeads: number;
  maxLen: number;
  seqDropout: number;
  /** undefined: dim */
  ffDim: number | undefined;
  seqLoss: 'full' | 'sampled';
  seqNegatives: number;
}

/** Where each sequential setting is declared (core/defaults.ts). */
export const SEQUENTIAL_FIELDS = {
  ...LOOP_FIELDS,
  model: 'model',
  dim: 'dim',
  seqBlocks: 'seqBlocks',
  seqHeads: 'seqHeads',
  maxLen: 'maxLen',
  seqDropout: 'seqDropout',
  ffDim: 'ffDim',
  seqLoss: 'seqLoss',
  seqNegatives: 'seqNegatives',
  ...SEQ_KD_FIELDS,
} as const;

/** The library defaults: the settings' defaults with sasrec's own loop defaults (core/defaults.ts MODEL_DEFAULTS). */
export const SEQUENTIAL_DEFAULTS: SequentialConfig = { ...defaultsFor(SEQUENTIAL_FIELDS), ...modelDefaults('sasrec'), model: 'sasrec' } as SequentialConfig;

/** What a sequential checkpoint's model.json carries (the issue-19 contract: shape, lnEps, dataset). */
export interface SequentialMeta extends LoopMeta {
  kind: 'student';
  model: SequentialModelName;
  objective: 'next-item';
  dataset: DatasetRef;
  /** where the sequences' order came from */
  order: Dataset['order'];
  shape: SasRecShape;
  lnEps: number;
  config: SequentialConfig;
  backend: string;
  parameters: number;
}

export function sasrecShape(cfg: SequentialConfig, nItems: number): SasRecShape {
  return { dim: cfg.dim, blocks: cfg.seqBlocks, heads: cfg.seqHeads, maxLen: cfg.maxLen, ffDim: cfg.ffDim ?? cfg.dim, nItems };
}

type SequentialResult = TrainResult & { [extra: string]: unknown };

export async function trainSequential(data: Dataset, config: SequentialConfig, opts: TrainOptions): Promise<SequentialResult> {
  checkFields(config, SEQUENTIAL_FIELDS);
  if (config.seqKd !== 'odmt' || config.odmtStudent !== 'distilled') return trainOne(data, config, opts);
  // --odmt-student distilled: stage 1, the ODMT run (kept, and reused once finished); stage 2, the student
  const teacherDir = odmtTeacherDir(opts.checkpointDir);
  const done = hasCheckpoint(teacherDir) && checkpointFor<SequentialMeta>(teacherDir, data, 'all').meta.finished;
  let teacherResult: SequentialResult | undefined;
  if (done) opts.log.info({ checkpoint: teacherDir }, 'odmt teacher: reusing the finished run');
  else teacherResult = await trainOne(data, { ...config, odmtStudent: 'branch' }, { ...opts, checkpointDir: teacherDir, resume: opts.resume && hasCheckpoint(teacherDir) });
  const teacher = checkpointFor<SequentialMeta>(teacherDir, data, 'all');
  const student = await trainOne(data, config, { ...opts, resume: opts.resume && hasCheckpoint(opts.checkpointDir) }, teacher);
  return { ...student, odmtTeacher: { checkpoint: teacherDir, bestEpoch: teacher.meta.epoch, metrics: teacher.meta.metrics, ...(teacherResult ? { time: teacherResult.time, secondsPerEpoch: teacherResult.secondsPerEpoch, val: teacherResult.val, test: teacherResult.test, odmtValidation: teacherResult.odmtValidation } : { reused: true }) } };
}

/** One training run: the plain student, a --seq-kd one, or (`teacher` given) the student distilled from a finished ODMT run. */
async function trainOne(data: Dataset, config: SequentialConfig, opts: TrainOptions, teacher?: LoadedCheckpoint<SequentialMeta>): Promise<SequentialResult> {
  const resume = opts.resume ? checkpointFor<SequentialMeta>(opts.checkpointDir, data, 'interactions') : undefined; // an ID-only model
  // the architecture comes from the checkpoint on resume
  const cfg: SequentialConfig = resume ? { ...config, ...pickShape(resume.meta.config) } : { ...config };
  const shape = sasrecShape(cfg, data.nItems);
  const train = userSequences(data, 0);
  const windows = new SequenceWindows(train, cfg.maxLen, data.nItems, new Rng(0));
  if (windows.size === 0) {
    throw new Error(`dataset ${data.name} (${data.dir}): no user has two or more train interactions (x_label 0), so there is no next item to learn; a sequential model needs each user's sequence of interactions`);
  }
  const start = teacher && cfg.odmtDistillStart === 'branch' ? idBranchValues(teacher) : { seed: cfg.seed };
  const model = resume ? SasRec.fromCheckpoint(resume, shape) : new SasRec(shape, start);
  if (cfg.seqLoss === 'sampled') model.setSampling(data.itemPopularity);
  const parameters = model.parameters;
  const startEpoch = resume ? resume.meta.epoch + 1 : 1;
  // dropout and negatives: their own stream, fresh (and reproducible) after a resume, like the loop's
  const lossRng = new Rng(cfg.seed * 2 + 1 + startEpoch * 7919);
  const lossOptions = { dropout: cfg.seqDropout, loss: cfg.seqLoss, negatives: cfg.seqNegatives };
  opts.log.info(
    { dataset: data.name, model: cfg.model, users: data.nUsers, items: data.nItems, windows: windows.size, order: data.order, backend: opts.backend.backend, parameters, config: cfg },
    `training the sequential ${cfg.model} student (sequences in ${data.order === 'timestamp' ? 'timestamp' : 'file line'} order)`,
  );
  const plain: Trainable<SequenceBatch> = {
    variables: model.variables,
    dim: cfg.dim,
    loss: (b) => model.loss(b, lossOptions, lossRng),
    batches: (rng) => new SequenceWindows(train, cfg.maxLen, data.nItems, rng),
    evaluate: (split, ks, perUser) => evaluateSequentialWithUsers(model, data, { split, ks, perUser }),
    arrays: () => model.arrays(),
  };
  // --seq-kd: the distillation's own variables, loss terms and (odmt) evaluation wrap the plain student
  const kd: KdHooks | null = teacher
    ? distilledHooks(data, cfg, model, plain, teacher, { lossRng })
    : cfg.seqKd === 'none'
      ? null
      : kdTrainable(data, cfg, model, plain, { lossRng, checkpointDir: opts.checkpointDir, resume, log: opts.log });
  const trainable = kd?.trainable ?? plain;
  const parametersAll = kd ? trainable.variables.reduce((n, v) => n + v.size, 0) : parameters;
  try {
    const res = await runLoop(data, trainable, cfg, {
      checkpointDir: opts.checkpointDir,
      log: opts.log,
      title: `${cfg.model} student on ${data.name}`,
      label: cfg.model,
      resume,
      progress: opts.progress,
      meta: (loop): SequentialMeta => ({ kind: 'student', model: cfg.model, objective: 'next-item', dataset: datasetRef(data), order: data.order, shape, lnEps: LN_EPS, config: cfg, backend: opts.backend.backend, parameters, ...loop }),
    });
    const done = finish(opts, res, parameters);
    return kd ? { ...done, trainingParameters: parametersAll, ...kd.report() } : { ...done };
  } finally {
    kd?.dispose();
    model.dispose();
  }
}

/** The settings that fix the weights' shapes. */
function pickShape(c: SequentialConfig): Pick<SequentialConfig, 'model' | 'dim' | 'seqBlocks' | 'seqHeads' | 'maxLen' | 'ffDim'> {
  return { model: c.model, dim: c.dim, seqBlocks: c.seqBlocks, seqHeads: c.seqHeads, maxLen: c.maxLen, ffDim: c.ffDim };
}
