/** Stage 1: the multimodal teacher (with its soft prompt) on the shared training loop. */
import type { Dataset } from '../../data/dataset.js';
import { normalizedAdjacency } from '../../data/graph.js';
import { Teacher, type TeacherShape } from '../models/teacher.js';
import { LOOP_FIELDS, runLoop, type LoopConfig, type LoopMeta, type Trainable } from '../loop.js';
import { checkFields, defaultsFor } from '../../core/defaults.js';
import { checkpointFor, datasetRef, finish, type DatasetRef, type TrainOptions, type TrainResult } from './student.js';
import type { Triplets } from '../../data/sampler.js';
import type { Logger } from '../../core/log.js';
import { timed } from '../timed.js';

export interface TeacherConfig extends LoopConfig, TeacherShape {
  reg: number;
  /** weight of the per-modality BPR terms on F^m */
  modalWeight: number;
}

/** Where each teacher setting is declared (core/defaults.ts): the loop's, with the teacher's own lr and layers. */
export const TEACHER_FIELDS = {
  ...LOOP_FIELDS,
  lr: 'teacherLr',
  dim: 'dim',
  layers: 'teacherLayers',
  dropout: 'teacherDropout',
  promptRate: 'promptRate',
  promptDim: 'promptDim',
  prompt: 'prompt',
  modalMix: 'teacherModalMix',
  reg: 'reg',
  modalWeight: 'teacherModalWeight',
} as const;

export const TEACHER_DEFAULTS: TeacherConfig = defaultsFor(TEACHER_FIELDS);

export interface TeacherMeta extends LoopMeta {
  kind: 'teacher';
  model: 'promptmm-teacher';
  dataset: DatasetRef;
  modalities: { name: string; dim: number }[];
  config: TeacherConfig;
  backend: string;
  parameters: number;
}

function teacherTrainable(teacher: Teacher, cfg: TeacherConfig): Trainable {
  let last: Record<string, number> = {};
  return {
    variables: teacher.variables,
    dim: teacher.shape.dim,
    loss: (t: Triplets) => {
      const { total, terms } = teacher.loss(t, cfg.reg, cfg.modalWeight);
      last = Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v.dataSync()[0]]));
      return total;
    },
    lossTerms: () => last,
    embeddings: () => teacher.embeddings(),
    arrays: () => teacher.arrays(),
  };
}

export async function trainTeacher(data: Dataset, config: TeacherConfig, opts: TrainOptions): Promise<TrainResult> {
  checkFields(config, TEACHER_FIELDS);
  let cfg = { ...config };
  const resume = opts.resume ? checkpointFor<TeacherMeta>(opts.checkpointDir, data, 'all') : undefined;
  if (resume) cfg = { ...cfg, ...architecture(resume.meta.config) };
  const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
  const setup = cfg.prompt ? 'teacher set-up (standardised features, PCA of the prompt)' : 'teacher set-up (standardised features)';
  opts.log.info({ modalities: data.modalities.map((m) => `${m.name}(${m.dim})`), items: data.nItems }, `${setup}…`);
  const teacher = timed(opts.log, setup, () => new Teacher(data, graph, cfg, resume ? resume.arrays : { seed: cfg.seed })).value;
  const parameters = teacher.parameters;
  opts.log.info({ dataset: data.name, modalities: teacher.modalities, backend: opts.backend.backend, parameters, config: cfg }, 'training the multimodal teacher');
  try {
    const res = await runLoop(data, teacherTrainable(teacher, cfg), cfg, {
      checkpointDir: opts.checkpointDir,
      log: opts.log,
      title: `PromptMM teacher on ${data.name}`,
      label: 'teacher',
      resume,
      progress: opts.progress,
      meta: (loop): TeacherMeta => ({
        kind: 'teacher',
        model: 'promptmm-teacher',
        dataset: datasetRef(data),
        modalities: data.modalities.map((m) => ({ name: m.name, dim: m.dim })),
        config: cfg,
        backend: opts.backend.backend,
        parameters,
        ...loop,
      }),
    });
    return finish(opts, res, parameters);
  } finally {
    teacher.dispose();
  }
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
