/**
 * The plain sequential student (`train --model sasrec`): SASRec on next-item windows of the
 * train split, full (or sampled) softmax cross-entropy, on the shared training loop (early
 * stopping on validation NDCG@10 by default, checkpoints, resume, curves, progress bar).
 */
import type { Dataset } from '../../data/dataset.js';
import { SequenceWindows, userSequences, type SequenceBatch } from '../../data/sequences.js';
import { Rng } from '../../core/rng.js';
import { checkFields, defaultsFor, modelDefaults, type SequentialModelName } from '../../core/defaults.js';
import { SEQ_KD_FIELDS, kdTrainable, type KdHooks, type SeqKdConfig } from './sequential-kd.js';
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

export async function trainSequential(data: Dataset, config: SequentialConfig, opts: TrainOptions): Promise<TrainResult & { [extra: string]: unknown }> {
  checkFields(config, SEQUENTIAL_FIELDS);
  const resume = opts.resume ? checkpointFor<SequentialMeta>(opts.checkpointDir, data, 'interactions') : undefined; // an ID-only model
  // the architecture comes from the checkpoint on resume
  const cfg: SequentialConfig = resume ? { ...config, ...pickShape(resume.meta.config) } : { ...config };
  const shape = sasrecShape(cfg, data.nItems);
  const train = userSequences(data, 0);
  const windows = new SequenceWindows(train, cfg.maxLen, data.nItems, new Rng(0));
  if (windows.size === 0) {
    throw new Error(`dataset ${data.name} (${data.dir}): no user has two or more train interactions (x_label 0), so there is no next item to learn; a sequential model needs each user's sequence of interactions`);
  }
  const model = resume ? SasRec.fromCheckpoint(resume, shape) : new SasRec(shape, { seed: cfg.seed });
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
  const kd: KdHooks | null = cfg.seqKd === 'none' ? null : kdTrainable(data, cfg, model, plain, { lossRng, checkpointDir: opts.checkpointDir, resume, log: opts.log });
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
