/** The plain student (BPR only; `--model`, LightGCN by default) on the shared training loop. */
import { join } from 'node:path';
import type { BackendInfo } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import { studentKind, type StudentModel } from '../models/registry.js';
import { loadCheckpoint } from '../checkpoint.js';
import { LOOP_FIELDS, runLoop, type LoopConfig, type LoopMeta, type LoopResult, type Trainable } from '../loop.js';
import { checkFields, defaultsFor, type StudentModelName } from '../../core/defaults.js';
import type { Triplets } from '../../data/sampler.js';
import type { Logger } from '../../core/log.js';
import { hashMismatch, type DatasetHashes } from '../../data/dataset-hash.js';

export interface StudentConfig extends LoopConfig {
  model: StudentModelName;
  dim: number;
  layers: number;
  reg: number;
}

/** Where each student setting is declared (core/defaults.ts). */
export const STUDENT_FIELDS = { ...LOOP_FIELDS, model: 'model', dim: 'dim', layers: 'layers', reg: 'reg' } as const;

export const STUDENT_DEFAULTS: StudentConfig = defaultsFor(STUDENT_FIELDS);

export interface DatasetRef extends DatasetHashes {
  name: string;
  dir: string;
  nUsers: number;
  nItems: number;
}

/** What a student checkpoint's model.json carries besides the weights. */
export interface StudentMeta extends LoopMeta {
  kind: 'student';
  model: StudentModelName;
  /** 'bpr' for the plain student, 'kd' for the distilled one */
  objective: 'bpr' | 'kd';
  dataset: DatasetRef;
  config: StudentConfig & Record<string, unknown>;
  backend: string;
  parameters: number;
}

export interface TrainResult extends LoopResult {
  checkpointDir: string;
  parameters: number;
  peakRssMiB: number;
}

export interface TrainOptions {
  checkpointDir: string;
  backend: BackendInfo;
  log: Logger;
  /** continue from the checkpoint in checkpointDir */
  resume?: boolean;
  progress?: boolean;
}

export function datasetRef(d: Dataset): DatasetRef {
  return { name: d.name, dir: d.dir, hash: d.hash, featuresHash: d.featuresHash ?? '', nUsers: d.nUsers, nItems: d.nItems };
}

/**
 * Refuses a checkpoint trained on other data; returns it otherwise. `need`: what the model
 * reads (an ID-only student the interactions; a teacher, or a stage that loads one, also the features).
 */
export function checkpointFor<M extends { dataset: DatasetRef }>(dir: string, data: Dataset, need: 'interactions' | 'all') {
  const ck = loadCheckpoint<M>(dir);
  const why = hashMismatch(ck.meta.dataset, data, need);
  if (why) throw new Error(`checkpoint ${dir} ${why}`);
  return ck;
}

/** A student + BPR + L2 as a Trainable. */
function plainStudent(model: StudentModel, dim: number, reg: number): Trainable {
  return {
    variables: model.variables,
    dim,
    loss: (t: Triplets) => model.bprLoss(t, reg),
    embeddings: () => model.finalEmbeddings(),
    arrays: () => model.arrays(),
  };
}

export async function trainStudent(data: Dataset, config: StudentConfig, opts: TrainOptions): Promise<TrainResult> {
  checkFields(config, STUDENT_FIELDS);
  let cfg = { ...config };
  const resume = opts.resume ? checkpointFor<StudentMeta>(opts.checkpointDir, data, 'interactions') : undefined;
  // architecture from the checkpoint
  if (resume) cfg = { ...cfg, model: resume.meta.model ?? 'lightgcn', dim: resume.meta.config.dim, layers: resume.meta.config.layers };
  const model = studentKind(cfg.model).create(data, cfg, resume);
  const parameters = model.parameters;
  opts.log.info({ dataset: data.name, model: cfg.model, users: data.nUsers, items: data.nItems, train: data.train.users.length, backend: opts.backend.backend, parameters, config: cfg }, `training the plain ${cfg.model} student`);
  try {
    const res = await runLoop(data, plainStudent(model, cfg.dim, cfg.reg), cfg, {
      checkpointDir: opts.checkpointDir,
      log: opts.log,
      title: `${cfg.model} student on ${data.name}`,
      label: 'student',
      resume,
      progress: opts.progress,
      meta: (loop): StudentMeta => ({ kind: 'student', model: cfg.model, objective: 'bpr', dataset: datasetRef(data), config: cfg, backend: opts.backend.backend, parameters, ...loop }),
    });
    return finish(opts, res, parameters);
  } finally {
    model.dispose();
  }
}

export function finish(opts: TrainOptions, res: Awaited<ReturnType<typeof runLoop>>, parameters: number): TrainResult {
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  opts.log.info({ bestEpoch: res.bestEpoch, val: res.val, test: res.test, secondsPerEpoch: res.secondsPerEpoch, peakRssMiB: Math.round(peakRssMiB) }, 'training finished');
  return { checkpointDir: opts.checkpointDir, ...res, parameters, peakRssMiB };
}

export function studentCheckpointDir(repo: string, name: string): string {
  return join(repo, name, 'checkpoints', 'student');
}

export function teacherCheckpointDir(repo: string, name: string): string {
  return join(repo, name, 'checkpoints', 'teacher');
}
