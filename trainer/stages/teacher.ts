/**
 * Stage 1: the multimodal teacher (with its soft prompt) on the shared training loop: the
 * PromptMM teacher, a uni-modal teacher (the same architecture on one modality, for CKD), or
 * the CKD teacher (the same architecture distilled from the uni-modal teachers, models/ckd.ts).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../../data/dataset.js';
import { normalizedAdjacency } from '../../data/graph.js';
import { Teacher, type TeacherShape } from '../models/teacher.js';
import { LOOP_FIELDS, runLoop, type LoopConfig, type LoopMeta, type Trainable } from '../loop.js';
import { checkFields, defaultsFor } from '../../core/defaults.js';
import { hasCheckpoint } from '../checkpoint.js';
import { checkpointFor, datasetRef, finish, type DatasetRef, type TrainOptions, type TrainResult } from './student.js';
import type { Triplets } from '../../data/sampler.js';
import type { Logger } from '../../core/log.js';
import { timed } from '../timed.js';
import { CkdDistiller } from '../models/ckd.js';
import { Rng } from '../../core/rng.js';
import { seriesSvg, type EpochRecord } from '../../core/plot.js';

export interface TeacherConfig extends LoopConfig, TeacherShape {
  reg: number;
  /** weight of the per-modality BPR terms on F^m */
  modalWeight: number;
  /** promptmm, or ckd (uni-modal teachers first, then this teacher distilled from them) */
  kind: 'promptmm' | 'ckd';
  /** CKD: weight of its whole term, of the generic part in it, τ of the generic part */
  ckdWeight: number;
  ckdKl: number;
  ckdTemperature: number;
}

/** Where each teacher setting is declared (core/defaults.ts): the loop's, with the teacher's own lr and layers. */
export const TEACHER_FIELDS = {
  ...LOOP_FIELDS,
  lr: 'teacherLr',
  patience: 'teacherPatience',
  dim: 'dim',
  layers: 'teacherLayers',
  dropout: 'teacherDropout',
  promptRate: 'promptRate',
  promptDim: 'promptDim',
  prompt: 'prompt',
  modalMix: 'teacherModalMix',
  reg: 'reg',
  modalWeight: 'teacherModalWeight',
  kind: 'teacherKind',
  ckdWeight: 'ckdWeight',
  ckdKl: 'ckdKl',
  ckdTemperature: 'ckdTemperature',
} as const;

export const TEACHER_DEFAULTS: TeacherConfig = defaultsFor(TEACHER_FIELDS);

export interface TeacherMeta extends LoopMeta {
  kind: 'teacher';
  /** the PromptMM teacher; a uni-modal teacher of CKD (its one modality in `modalities`); the CKD teacher */
  model: 'promptmm-teacher' | 'unimodal-teacher' | 'ckd-teacher';
  /** the CKD teacher's uni-modal teachers: checkpoint and validation metrics of each */
  unimodal?: { modality: string; checkpoint: string; val: Record<string, number> }[];
  dataset: DatasetRef;
  modalities: { name: string; dim: number }[];
  config: TeacherConfig;
  backend: string;
  parameters: number;
}

function teacherTrainable(teacher: Teacher, cfg: TeacherConfig, ckd: CkdDistiller | null): Trainable {
  let last: Record<string, number> = {};
  return {
    variables: teacher.variables,
    dim: teacher.shape.dim,
    loss: (t: Triplets) => {
      const { total, terms } = teacher.loss(t, cfg.reg, cfg.modalWeight, ckd ? (out) => ckd.terms(out, t, teacher.modalities) : undefined);
      last = Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v.dataSync()[0]]));
      if (ckd) Object.assign(last, ckd.lastStats);
      return total;
    },
    lossTerms: () => last,
    embeddings: () => teacher.embeddings(),
    arrays: () => teacher.arrays(),
  };
}

/** Extra inputs of a teacher stage: the uni-modal teacher of one modality, or the CKD teacher's uni-modal checkpoints by modality. */
export interface TeacherStageOptions extends TrainOptions {
  /** train the uni-modal teacher of this modality (the data keeps only it) */
  unimodal?: string;
  /** --teacher ckd: the uni-modal teachers' checkpoints, one per modality of the data */
  unimodalDirs?: Record<string, string>;
}

/** The dataset with only the modality `name` (a uni-modal teacher's input); the hashes stay the dataset's. */
export function withModalities(data: Dataset, names: string[]): Dataset {
  return { ...data, modalities: data.modalities.filter((m) => names.includes(m.name)) };
}

/**
 * Dead modalities: a feature file whose rows are all the same (all zeros, typically) carries
 * nothing, and z-scored it is all zeros. Returns their names with why.
 */
export function deadModalities(data: Dataset): { name: string; file: string; why: string }[] {
  const dead: { name: string; file: string; why: string }[] = [];
  for (const m of data.modalities) {
    const row0 = m.data.subarray(0, m.dim);
    let constant = true;
    for (let i = m.dim; i < data.nItems * m.dim && constant; i++) if (m.data[i] !== row0[i % m.dim]) constant = false;
    if (!constant) continue;
    const zeros = row0.every((v) => v === 0);
    dead.push({ name: m.name, file: m.file, why: zeros ? 'all zeros' : 'every row the same' });
  }
  return dead;
}

/** The dataset without its dead modalities, each reported (a warning naming the file); the caller decides what none left means. */
export function liveModalities(data: Dataset, log: Logger): Dataset {
  const dead = deadModalities(data);
  for (const d of dead) log.warn({ modality: d.name, file: d.file }, `modality ${d.name} (${d.file}) is ${d.why}: it carries no information and is left out of the teacher (remove the file, or fix the features)`);
  return dead.length ? withModalities(data, data.modalities.map((m) => m.name).filter((n) => !dead.some((d) => d.name === n))) : data;
}

/** The frozen uni-modal teachers' E^T, one per modality of `data`, checked to be what they claim. */
function unimodalEmbeddings(data: Dataset, dirs: Record<string, string>, log: Logger): { emb: Float32Array[]; refs: NonNullable<TeacherMeta['unimodal']> } {
  const emb: Float32Array[] = [];
  const refs: NonNullable<TeacherMeta['unimodal']> = [];
  for (const m of data.modalities) {
    const dir = dirs[m.name];
    if (!dir || !hasCheckpoint(dir)) throw new Error(`--teacher ckd: no uni-modal teacher of ${m.name} at ${dir ?? '(none)'} (run --stage unimodal first)`);
    const { teacher, meta } = loadTeacher(dir, withModalities(data, [m.name]), log);
    try {
      if (meta.model !== 'unimodal-teacher' || meta.modalities.length !== 1 || meta.modalities[0].name !== m.name) {
        throw new Error(`checkpoint ${dir} is not the uni-modal teacher of ${m.name} (it is a ${meta.model} on ${meta.modalities.map((x) => x.name).join(', ')})`);
      }
      if (!meta.finished) log.warn({ checkpoint: dir }, `the uni-modal teacher of ${m.name} did not finish its run: distilling from its best state so far`);
      emb.push(teacher.embeddings());
      refs.push({ modality: m.name, checkpoint: dir, val: meta.metrics.val });
    } finally {
      teacher.dispose();
    }
  }
  return { emb, refs };
}

export async function trainTeacher(data: Dataset, config: TeacherConfig, opts: TeacherStageOptions): Promise<TrainResult> {
  checkFields(config, TEACHER_FIELDS);
  let cfg = { ...config };
  if (opts.unimodal) data = withModalities(data, [opts.unimodal]);
  const model: TeacherMeta['model'] = opts.unimodal ? 'unimodal-teacher' : cfg.kind === 'ckd' && opts.unimodalDirs ? 'ckd-teacher' : 'promptmm-teacher';
  const resume = opts.resume ? checkpointFor<TeacherMeta>(opts.checkpointDir, data, 'all') : undefined;
  if (resume && resume.meta.model !== model) throw new Error(`--resume: the checkpoint at ${opts.checkpointDir} is a ${resume.meta.model ?? 'promptmm-teacher'}, not a ${model} (train without --resume, or with the --teacher it was trained with)`);
  if (resume) cfg = { ...cfg, ...architecture(resume.meta.config) };
  const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
  const setup = cfg.prompt ? 'teacher set-up (standardised features, PCA of the prompt)' : 'teacher set-up (standardised features)';
  opts.log.info({ modalities: data.modalities.map((m) => `${m.name}(${m.dim})`), items: data.nItems }, `${setup}…`);
  let ckd: CkdDistiller | null = null;
  let unimodal: TeacherMeta['unimodal'];
  if (model === 'ckd-teacher') {
    const u = timed(opts.log, 'uni-modal teachers loaded', () => unimodalEmbeddings(data, opts.unimodalDirs!, opts.log)).value;
    unimodal = u.refs;
    const active = Int32Array.from({ length: data.nUsers }, (_, i) => i).filter((i) => data.trainByUser.indptr[i + 1] > data.trainByUser.indptr[i]);
    ckd = new CkdDistiller(u.emb, data.nUsers, data.nItems, cfg.dim, cfg.modalMix, active, { weight: cfg.ckdWeight, kl: cfg.ckdKl, temperature: cfg.ckdTemperature }, new Rng(cfg.seed + 31));
  }
  const teacher = timed(opts.log, setup, () => new Teacher(data, graph, cfg, resume ? resume.arrays : { seed: cfg.seed })).value;
  const parameters = teacher.parameters;
  const what = { 'promptmm-teacher': 'the multimodal teacher', 'unimodal-teacher': `the uni-modal teacher of ${opts.unimodal}`, 'ckd-teacher': 'the CKD teacher (distilled from the uni-modal teachers)' }[model];
  const title = { 'promptmm-teacher': 'PromptMM teacher', 'unimodal-teacher': `uni-modal teacher (${opts.unimodal})`, 'ckd-teacher': 'CKD teacher' }[model];
  opts.log.info({ dataset: data.name, modalities: teacher.modalities, backend: opts.backend.backend, parameters, config: cfg }, `training ${what}`);
  try {
    const res = await runLoop(data, teacherTrainable(teacher, cfg, ckd), cfg, {
      checkpointDir: opts.checkpointDir,
      log: opts.log,
      title: `${title} on ${data.name}`,
      label: model === 'unimodal-teacher' ? `unimodal-${opts.unimodal}` : 'teacher',
      resume,
      progress: opts.progress,
      meta: (loop): TeacherMeta => ({
        kind: 'teacher',
        model,
        dataset: datasetRef(data),
        modalities: data.modalities.map((m) => ({ name: m.name, dim: m.dim })),
        config: cfg,
        backend: opts.backend.backend,
        parameters,
        ...(unimodal ? { unimodal } : {}),
        ...loop,
      }),
    });
    if (ckd) await modalityWeightPlot(opts.checkpointDir, teacher.modalities, data.name, opts.log);
    return finish(opts, res, parameters);
  } finally {
    teacher.dispose();
    ckd?.dispose();
  }
}

/** The CKD teacher's modality weights per epoch (means over the epoch's batches, from curve.json) as modality-weights.svg beside it. */
async function modalityWeightPlot(dir: string, modalities: string[], dataset: string, log: Logger): Promise<void> {
  const file = join(dir, 'curve.json');
  if (!existsSync(file)) return;
  const curve = JSON.parse(readFileSync(file, 'utf8')) as EpochRecord[];
  const points = curve.flatMap((r) => modalities.filter((m) => r.terms?.[`w_${m}`] !== undefined).map((m) => ({ x: r.epoch, series: m, y: r.terms![`w_${m}`] })));
  writeFileSync(join(dir, 'modality-weights.svg'), await seriesSvg(points, { title: `CKD modality weights on ${dataset} (mean over each epoch's triplets)`, x: 'epoch', y: 'weight (sums to the modality count)', series: 'modality' }));
  log.info({ file: join(dir, 'modality-weights.svg') }, 'CKD modality weights plotted');
}

/** The shape-defining part of a teacher config (what a checkpoint fixes). */
export function architecture(c: TeacherConfig): TeacherShape {
  return { dim: c.dim, layers: c.layers, dropout: c.dropout, promptRate: c.promptRate, promptDim: c.promptDim, prompt: c.prompt, modalMix: c.modalMix };
}

/** Loads a trained teacher (frozen use in stage 2); its set-up (the prompt's PCA) is logged when slow. */
export function loadTeacher(dir: string, data: Dataset, log: Logger): { teacher: Teacher; meta: TeacherMeta } {
  const ck = checkpointFor<TeacherMeta>(dir, data, 'all');
  const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
  log.info({ checkpoint: dir }, 'loading the teacher (standardised features, PCA of the prompt)…');
  const teacher = timed(log, 'teacher loaded', () => new Teacher(data, graph, architecture(ck.meta.config), ck.arrays)).value;
  return { teacher, meta: ck.meta };
}
