/**
 * `promptmm train`: stage 1 (teacher; with --teacher ckd its uni-modal teachers first) then,
 * past the teacher-quality guard (guard.ts), stage 2 (distilled student), or the plain
 * student alone; `--model sasrec` trains the sequential student (no teacher yet). Each stage is resumable: with `resume`, a stage whose checkpoint says it
 * finished is skipped, an interrupted one continues from its checkpoint.
 */
import type { BackendInfo } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import type { Logger } from '../../core/log.js';
import { hasCheckpoint, loadCheckpoint } from '../checkpoint.js';
import type { LoopMeta } from '../loop.js';
import { studentCheckpointDir, teacherCheckpointDir, trainStudent, type StudentConfig, type StudentMeta, type TrainResult } from './student.js';
import { liveModalities, trainTeacher, type TeacherConfig, type TeacherMeta } from './teacher.js';
import { adoptPlain, cachedPlain, kdAsideDir, plainCheckpointDir, studentGuard, teacherGuard, type GuardReport, type StudentGuardReport } from './guard.js';
import { startPlainStudent } from './plain-thread.js';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { trainKdStudent, type KdConfig } from './kd.js';
import { SEQUENTIAL_DEFAULTS, trainSequential, type SequentialConfig } from './sequential.js';
import { isSequentialModel } from '../../core/defaults.js';
import { itemEncoderCheckpointDir, studentWeightsHash, trainItemEncoder, type ItemEncoderMeta, type ItemEncoderReport } from './item-encoder.js';
import type { ItemEncoderConfig } from '../models/item-encoder.js';

export type Stage = 'all' | 'unimodal' | 'teacher' | 'student';

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
  /** run stage 2 even when the teacher guard finds the teacher not better than the plain student */
  forceKd?: boolean;
  /** train the guard's plain student on a worker thread beside the teacher (default true; plain-thread.ts) */
  guardThread?: boolean;
}

export interface StageReport extends Omit<TrainResult, 'checkpointDir'> {
  checkpoint: string;
  wallSeconds: number;
  skipped?: boolean;
}

export interface PipelineReport {
  mode: 'kd' | 'plain';
  /** promptmm or ckd (ckd on one modality trains the PromptMM form: see docs/method.md) */
  teacherKind?: 'promptmm' | 'ckd';
  /** --teacher ckd: each modality's uni-modal teacher */
  unimodal?: Record<string, StageReport>;
  teacher?: StageReport;
  /** the teacher guard: the teacher's validation metric next to the plain student's, and what was decided */
  guard?: GuardReport;
  /** the plain student the guard trained (absent when reused) */
  plain?: StageReport;
  /** after KD (not forced): whether the distilled student beat the plain one on validation, and which is the student */
  studentGuard?: StudentGuardReport;
  /** the distilled student the student guard set aside (student is then the plain one) */
  kdStudent?: StageReport;
  student?: StageReport;
  itemEncoder?: ItemEncoderReport & { skipped?: boolean };
  parameters: { teacher?: number; student?: number; ratio?: number };
  wallSeconds: number;
  peakRssMiB: number;
}

export async function runPipeline(o: PipelineOptions): Promise<PipelineReport> {
  const t0 = performance.now();
  const { log } = o;
  let data = o.data;
  const tDir = teacherCheckpointDir(o.repo, o.name);
  const sDir = studentCheckpointDir(o.repo, o.name);
  let mode: 'kd' | 'plain' = o.studentOnly ? 'plain' : 'kd';
  const sequential = isSequentialModel(o.student.model);
  if (sequential) {
    if (o.stage === 'teacher') throw new Error(`--stage teacher: --model ${o.student.model} has no teacher yet (its multimodal distillation is a later issue); train it with --stage all or student`);
    // --seq-kd kdsr|odmt distils the modalities inside the sequential stage (trainer/stages/sequential-kd.ts)
    if (mode === 'kd' && (o.sequential?.seqKd ?? 'none') === 'none') log.warn({ model: o.student.model }, `the multimodal stages (teacher, distillation) do not apply to --model ${o.student.model} yet: training the plain sequential student`);
    mode = 'plain';
  } else if (mode === 'kd' && data.modalities.length === 0) {
    log.warn({ dataset: data.name }, 'the dataset has no feature file (<modality>_feat.npy, dataset.json "features" or --feature NAME=FILE) and the teacher needs at least one modality: training the plain student alone');
    mode = 'plain';
  }
  // Dead modalities (a feature file of all zeros) are reported and left out of every teacher.
  if (mode === 'kd') {
    data = liveModalities(data, log);
    if (data.modalities.length === 0) {
      log.warn({ dataset: data.name }, 'every feature file of the dataset is dead (no information): training the plain student alone');
      mode = 'plain';
    }
  }
  let ckd = mode === 'kd' && o.teacher.kind === 'ckd';
  if (ckd && data.modalities.length < 2) {
    log.warn(
      { modality: data.modalities[0].name },
      `--teacher ckd with one modality: its only uni-modal teacher would be the teacher itself (same architecture, same input) and the counterfactual weight of a single modality is 1, so CKD reduces to the PromptMM teacher: training that (no uni-modal stage)`,
    );
    ckd = false;
  }
  if (o.stage === 'unimodal' && !ckd) throw new Error('--stage unimodal trains the uni-modal teachers of --teacher ckd, on a dataset with at least two (live) modalities and without --student-only');
  if (mode === 'plain' && o.stage === 'teacher') throw new Error('--stage teacher needs a dataset with at least one modality and no --student-only');
  const common = { backend: o.backend, log, progress: o.progress };
  const report: PipelineReport = { mode, parameters: {}, wallSeconds: 0, peakRssMiB: 0 };
  if (mode === 'kd') report.teacherKind = ckd ? 'ckd' : 'promptmm';
  const uDirs = Object.fromEntries(data.modalities.map((m) => [m.name, unimodalCheckpointDir(o.repo, o.name, m.name)]));
  const teacherModel = ckd ? 'ckd-teacher' : 'promptmm-teacher';

  // --resume onto a finished distilled student: nothing to decide (the guard ran when it was trained);
  // a plain student an earlier guard adopted is not one (it is decided again, and replaced if KD runs)
  // (one the student guard adopted after KD is decided: its distilled student is aside, finished)
  const aside = kdAsideDir(o.repo, o.name);
  const adopted = mode === 'kd' && hasCheckpoint(sDir) && loadCheckpoint<StudentMeta>(sDir).meta.objective === 'bpr' && !finishedStage(aside, o.student.epochs);
  const guardRuns = mode === 'kd' && (o.stage === 'all' || o.stage === 'student') && (adopted || !(o.resume && finishedStage(sDir, o.student.epochs)));
  // The guard's plain student does not depend on the teacher: when a teacher trains in this run
  // first, the plain student trains beside it on the second core (plain-thread.ts).
  const plainDir = plainCheckpointDir(o.repo, o.name);
  const teacherTrains = o.stage === 'all' && !(o.resume && finishedStage(tDir, o.teacher.epochs));
  const pending = guardRuns && teacherTrains && (o.guardThread ?? true) && !('meta' in cachedPlain(plainDir, data, o.student)) ? startPlainStudent(data, o.student, plainDir, o.backend, log) : undefined;
  try {
    await teacherStages();
    if (o.stage === 'all' || o.stage === 'student') {
      if (mode === 'kd' && !hasCheckpoint(tDir)) throw new Error(`stage 2 needs a trained teacher at ${tDir} (run --stage teacher first)`);
      let skip = false;
      if (guardRuns) {
        const s0 = performance.now();
        const g = await teacherGuard(data, o.student, tDir, plainDir, { ...common, forceKd: o.forceKd ?? false, pending });
        report.guard = g.report;
        if (g.trained) {
          const { checkpointDir, wallSeconds, ...rest } = g.trained;
          report.plain = { checkpoint: checkpointDir, ...rest, wallSeconds: wallSeconds ?? (performance.now() - s0) / 1000 };
        }
        // a distilled student set aside by an earlier run is not this decision's
        rmSync(aside, { recursive: true, force: true });
        if (g.report.decision === 'skipped') {
          adoptPlain(g.report.plainCheckpoint, sDir);
          report.student = adoptedReport(sDir);
          report.mode = 'plain';
          skip = true;
        } else if (adopted) {
          rmSync(sDir, { recursive: true, force: true });
        }
      }
      if (!skip) {
        report.student = await stage(sDir, o.resume, sequential ? (o.sequential ?? SEQUENTIAL_DEFAULTS).epochs : o.student.epochs, () =>
          mode === 'kd'
            ? trainKdStudent(data, { ...o.student, kd: o.kd }, { ...common, checkpointDir: sDir, teacherDir: tDir, resume: canResume(sDir, o.resume) })
            : sequential
              ? trainSequential(data, { ...(o.sequential ?? SEQUENTIAL_DEFAULTS), model: o.student.model as SequentialConfig['model'] }, { ...common, checkpointDir: sDir, resume: canResume(sDir, o.resume) })
              : trainStudent(data, o.student, { ...common, checkpointDir: sDir, resume: canResume(sDir, o.resume) }),
        );
        if (report.guard?.decision === 'kd') {
          report.studentGuard = studentGuard(sDir, report.guard.plainCheckpoint, aside, o.student.validMetric, log);
          if (report.studentGuard.kept === 'plain') {
            // the run's student is now the plain one; what the distilled one did and cost stays in kdStudent
            report.kdStudent = { ...report.student!, checkpoint: aside };
            report.student = adoptedReport(sDir);
            report.mode = 'plain';
          }
        }
      }
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
  } finally {
    // still running here only when the run failed before the guard waited for it: not left behind
    await pending?.stop();
  }

  /** The uni-modal teachers (--teacher ckd) and the teacher, as --stage asks. */
  async function teacherStages(): Promise<void> {
    if (ckd && (o.stage === 'all' || o.stage === 'unimodal')) {
      report.unimodal = {};
      for (const m of data.modalities) {
        const dir = uDirs[m.name];
        checkKind(dir, 'unimodal-teacher', o.resume);
        report.unimodal[m.name] = await stage(dir, o.resume, o.teacher.epochs, () =>
          trainTeacher(data, o.teacher, { ...common, checkpointDir: dir, resume: canResume(dir, o.resume), unimodal: m.name }),
        );
      }
    }
    if (mode === 'kd' && (o.stage === 'all' || o.stage === 'teacher')) {
      checkKind(tDir, teacherModel, o.resume);
      report.teacher = await stage(tDir, o.resume, o.teacher.epochs, () =>
        trainTeacher(data, o.teacher, { ...common, checkpointDir: tDir, resume: canResume(tDir, o.resume), unimodalDirs: ckd ? uDirs : undefined }),
      );
    }
  }

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

/** Where --teacher ckd keeps the uni-modal teacher of a modality. */
export function unimodalCheckpointDir(repo: string, name: string, modality: string): string {
  return join(repo, name, 'checkpoints', `unimodal-${modality}`);
}

/** --resume onto a teacher checkpoint of another kind (a PromptMM teacher under --teacher ckd, say) is refused, naming both. */
function checkKind(dir: string, model: TeacherMeta['model'], resume: boolean): void {
  if (!resume || !hasCheckpoint(dir)) return;
  const had = loadCheckpoint<TeacherMeta>(dir).meta.model ?? 'promptmm-teacher';
  if (had !== model) throw new Error(`--resume: the checkpoint at ${dir} is a ${had}, this run trains a ${model} there (train without --resume to start over, or pass the --teacher it was trained with)`);
}

function canResume(dir: string, resume: boolean): boolean {
  return resume && hasCheckpoint(dir);
}

/** The stage report of a plain student adopted as the run's student (nothing trained for it in this stage). */
function adoptedReport(sDir: string): StageReport {
  const m = loadCheckpoint<StudentMeta>(sDir).meta;
  const f = m.finished!;
  return { checkpoint: sDir, bestEpoch: m.epoch, epochsRun: 0, stoppedEarly: f.stoppedEarly, endedOn: f.endedOn ?? (f.stoppedEarly ? 'plateau' : 'epoch cap'), val: m.metrics.val, test: m.metrics.test ?? {}, secondsPerEpoch: f.secondsPerEpoch, time: { train: 0, eval: 0, checkpoint: 0 }, parameters: m.parameters, peakRssMiB: 0, wallSeconds: 0, skipped: true };
}

/** A checkpoint whose run ended by early stopping or by reaching `epochs`. */
function finishedStage(dir: string, epochs: number): LoopMeta | null {
  if (!hasCheckpoint(dir)) return null;
  const m = loadCheckpoint<LoopMeta>(dir).meta;
  if (!m.finished) return null;
  return m.finished.stoppedEarly || m.finished.lastEpoch >= epochs ? m : null;
}
