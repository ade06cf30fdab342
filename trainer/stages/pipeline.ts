/**
 * `promptmm train`: stage 1 (teacher) then stage 2 (distilled student), or the plain
 * student alone; `--model sasrec` trains the sequential student (no teacher yet). Each stage is resumable: with `resume`, a stage whose checkpoint says it
 * finished is skipped, an interrupted one continues from its checkpoint.
 */
import type { BackendInfo } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import type { Logger } from '../../core/log.js';
import { hasCheckpoint, loadCheckpoint } from '../checkpoint.js';
import type { LoopMeta } from '../loop.js';
import { studentCheckpointDir, teacherCheckpointDir, trainStudent, type StudentConfig, type StudentMeta, type TrainResult } from './student.js';
import { trainTeacher, type TeacherConfig, type TeacherMeta } from './teacher.js';
import { trainKdStudent, type KdConfig } from './kd.js';
import { SEQUENTIAL_DEFAULTS, trainSequential, type SequentialConfig } from './sequential.js';
import { isSequentialModel } from '../../core/defaults.js';
import { itemEncoderCheckpointDir, studentWeightsHash, trainItemEncoder, type ItemEncoderMeta, type ItemEncoderReport } from './item-encoder.js';
import type { ItemEncoderConfig } from '../models/item-encoder.js';

export type Stage = 'all' | 'teacher' | 'student';

export interface PipelineOptions {
  data: Dataset;
  repo: string;
  name: string;
  student: StudentConfig;
  teacher: TeacherConfig;
  kd: KdConfig;
  /** the sequential student's settings (used when student.model is sequential) */
  sequential?: SequentialConfig;
  stage: Stage;
  /** the item encoder's settings, trained after the student when the dataset has features; null or absent: off (--no-item-encoder) */
  itemEncoder?: ItemEncoderConfig | null;
  studentOnly: boolean;
  resume: boolean;
  backend: BackendInfo;
  log: Logger;
  progress: boolean;
}

export interface StageReport extends Omit<TrainResult, 'checkpointDir'> {
  checkpoint: string;
  wallSeconds: number;
  skipped?: boolean;
}

export interface PipelineReport {
  mode: 'kd' | 'plain';
  teacher?: StageReport;
  student?: StageReport;
  itemEncoder?: ItemEncoderReport & { skipped?: boolean };
  parameters: { teacher?: number; student?: number; ratio?: number };
  wallSeconds: number;
  peakRssMiB: number;
}

export async function runPipeline(o: PipelineOptions): Promise<PipelineReport> {
  const t0 = performance.now();
  const { data, log } = o;
  const tDir = teacherCheckpointDir(o.repo, o.name);
  const sDir = studentCheckpointDir(o.repo, o.name);
  let mode: 'kd' | 'plain' = o.studentOnly ? 'plain' : 'kd';
  const sequential = isSequentialModel(o.student.model);
  if (sequential) {
    if (o.stage === 'teacher') throw new Error(`--stage teacher: --model ${o.student.model} has no teacher yet (its multimodal distillation is a later issue); train it with --stage all or student`);
    if (mode === 'kd') log.warn({ model: o.student.model }, `the multimodal stages (teacher, distillation) do not apply to --model ${o.student.model} yet: training the plain sequential student`);
    mode = 'plain';
  } else if (mode === 'kd' && data.modalities.length === 0) {
    log.warn({ dataset: data.name }, 'the dataset has no feature file (<modality>_feat.npy, dataset.json "features" or --feature NAME=FILE) and the teacher needs at least one modality: training the plain student alone');
    mode = 'plain';
  }
  if (mode === 'plain' && o.stage === 'teacher') throw new Error('--stage teacher needs a dataset with at least one modality and no --student-only');
  const common = { backend: o.backend, log, progress: o.progress };
  const report: PipelineReport = { mode, parameters: {}, wallSeconds: 0, peakRssMiB: 0 };

  if (mode === 'kd' && o.stage !== 'student') {
    report.teacher = await stage(tDir, o.resume, o.teacher.epochs, () =>
      trainTeacher(data, o.teacher, { ...common, checkpointDir: tDir, resume: canResume(tDir, o.resume) }),
    );
  }
  if (o.stage !== 'teacher') {
    if (mode === 'kd' && !hasCheckpoint(tDir)) throw new Error(`stage 2 needs a trained teacher at ${tDir} (run --stage teacher first)`);
    report.student = await stage(sDir, o.resume, sequential ? (o.sequential ?? SEQUENTIAL_DEFAULTS).epochs : o.student.epochs, () =>
      mode === 'kd'
        ? trainKdStudent(data, { ...o.student, kd: o.kd }, { ...common, checkpointDir: sDir, teacherDir: tDir, resume: canResume(sDir, o.resume) })
        : sequential
          ? trainSequential(data, { ...(o.sequential ?? SEQUENTIAL_DEFAULTS), model: o.student.model as SequentialConfig['model'] }, { ...common, checkpointDir: sDir, resume: canResume(sDir, o.resume) })
          : trainStudent(data, o.student, { ...common, checkpointDir: sDir, resume: canResume(sDir, o.resume) }),
    );
  }
  // The item encoder, fit to the student just trained (issue 18): an embedding student and a dataset with features.
  if (o.itemEncoder && o.stage !== 'teacher' && !sequential && data.modalities.length > 0 && hasCheckpoint(sDir)) {
    const eDir = itemEncoderCheckpointDir(o.repo, o.name);
    const prev = o.resume && hasCheckpoint(eDir) ? loadCheckpoint<ItemEncoderMeta>(eDir).meta : null;
    if (prev && prev.studentWeights === studentWeightsHash(sDir)) {
      log.info({ checkpoint: eDir }, 'item encoder already fit to this student; skipped');
      report.itemEncoder = { checkpoint: eDir, design: prev.design, validation: prev.validation, bestEpoch: prev.bestEpoch, lambda: prev.lambda, seconds: 0, skipped: true };
    } else {
      report.itemEncoder = trainItemEncoder(data, o.itemEncoder, { studentDir: sDir, checkpointDir: eDir, log });
    }
  }
  if (mode === 'kd' && hasCheckpoint(tDir)) report.parameters.teacher = loadCheckpoint<TeacherMeta>(tDir).meta.parameters;
  if (hasCheckpoint(sDir)) report.parameters.student = loadCheckpoint<StudentMeta>(sDir).meta.parameters;
  if (report.parameters.teacher && report.parameters.student) report.parameters.ratio = report.parameters.teacher / report.parameters.student;
  report.wallSeconds = (performance.now() - t0) / 1000;
  report.peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
  return report;

  async function stage(dir: string, resume: boolean, epochs: number, run: () => Promise<TrainResult>): Promise<StageReport> {
    const s0 = performance.now();
    const done = resume ? finishedStage(dir, epochs) : null;
    if (done) {
      log.info({ checkpoint: dir, epoch: done.epoch }, 'stage already finished; skipped (train without --resume to start over)');
      const f = done.finished!;
      const endedOn = f.endedOn ?? (f.stoppedEarly ? 'plateau' : 'epoch cap');
      return { checkpoint: dir, bestEpoch: done.epoch, epochsRun: 0, stoppedEarly: f.stoppedEarly, endedOn, val: done.metrics.val, test: done.metrics.test ?? {}, secondsPerEpoch: f.secondsPerEpoch, time: { train: 0, eval: 0, checkpoint: 0 }, parameters: 0, peakRssMiB: 0, wallSeconds: 0, skipped: true };
    }
    const r = await run();
    const { checkpointDir, ...rest } = r;
    return { checkpoint: checkpointDir, ...rest, wallSeconds: (performance.now() - s0) / 1000 };
  }
}

function canResume(dir: string, resume: boolean): boolean {
  return resume && hasCheckpoint(dir);
}

/** A checkpoint whose run ended by early stopping or by reaching `epochs`. */
function finishedStage(dir: string, epochs: number): LoopMeta | null {
  if (!hasCheckpoint(dir)) return null;
  const m = loadCheckpoint<LoopMeta>(dir).meta;
  if (!m.finished) return null;
  return m.finished.stoppedEarly || m.finished.lastEpoch >= epochs ? m : null;
}
