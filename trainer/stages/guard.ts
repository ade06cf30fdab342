/**
 * The teacher-quality guard: before stage 2, the teacher's validation metric next to a plain
 * student's of the same budget (trained here into checkpoints/plain/, or reused when that
 * checkpoint finished on the same interactions with the same settings). KD from a teacher that
 * is not better costs many times the plain training for nothing: it is then skipped (the plain
 * student becomes the student) unless forced. After KD, the student guard keeps the distilled
 * student only if it beats the plain one on validation.
 */
import { cpSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../../data/dataset.js';
import { hasCheckpoint, loadCheckpoint } from '../checkpoint.js';
import type { LoopMeta } from '../loop.js';
import { hashMismatch } from '../../data/dataset-hash.js';
import { trainStudent, type StudentConfig, type StudentMeta, type TrainOptions, type TrainResult } from './student.js';
import type { TeacherMeta } from './teacher.js';
import type { PlainThread } from './plain-thread.js';

export interface GuardReport {
  /** the validation metric compared (--valid-metric) */
  metric: string;
  teacher: number;
  plain: number;
  /** (teacher − plain) / plain */
  relative: number;
  teacherBetter: boolean;
  /** kd: the teacher is better; skipped: it is not and KD was not run; forced: it is not and --force-kd ran KD anyway */
  decision: 'kd' | 'skipped' | 'forced';
  /** the plain student's checkpoint, and whether it was reused from an earlier run */
  plainCheckpoint: string;
  cached: boolean;
  teacherModel: string;
}

export function plainCheckpointDir(repo: string, name: string): string {
  return join(repo, name, 'checkpoints', 'plain');
}

/** Settings equal field by field (a cached plain student must have had the same budget). */
function sameConfig(a: object, b: object): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify((b as Record<string, unknown>)[k])) return false;
  return true;
}

/** A finished plain student at `dir` trained on these interactions with these settings, else null (and why, for the log). */
export function cachedPlain(dir: string, data: Dataset, cfg: StudentConfig): { meta: StudentMeta } | { why: string } {
  if (!hasCheckpoint(dir)) return { why: 'none yet' };
  const meta = loadCheckpoint<StudentMeta>(dir).meta;
  if (!meta.finished) return { why: 'its run did not finish' };
  const mismatch = hashMismatch(meta.dataset, data, 'interactions');
  if (mismatch) return { why: mismatch };
  if (!sameConfig(meta.config, cfg)) return { why: 'it was trained with other settings' };
  return { meta };
}

/**
 * Trains (or reuses) the plain student and compares. Returns the report and, when the plain
 * student was trained now, its training result.
 */
export async function teacherGuard(
  data: Dataset,
  student: StudentConfig,
  teacherDir: string,
  plainDir: string,
  opts: Omit<TrainOptions, 'checkpointDir' | 'resume'> & { forceKd: boolean; pending?: PlainThread },
): Promise<{ report: GuardReport; trained?: TrainResult & { wallSeconds?: number } }> {
  const { log } = opts;
  const metric = student.validMetric;
  const t = loadCheckpoint<TeacherMeta>(teacherDir).meta;
  const teacher = t.metrics.val[metric];
  if (typeof teacher !== 'number') throw new Error(`the teacher at ${teacherDir} has no validation ${metric}; train it with the --ks and --valid-metric of this run`);
  // a plain student trained beside the teacher (plain-thread.ts) is this run's, whatever is on disk now
  const cached: ReturnType<typeof cachedPlain> = opts.pending ? { why: 'trained on a worker thread beside the teacher' } : cachedPlain(plainDir, data, student);
  let plainMeta: LoopMeta;
  let trained: (TrainResult & { wallSeconds?: number }) | undefined;
  if (opts.pending) {
    log.info({ checkpoint: plainDir }, 'teacher guard: waiting for the plain student of the same budget (trained on a worker thread beside the teacher)');
    trained = await opts.pending.result;
    plainMeta = loadCheckpoint<StudentMeta>(plainDir).meta;
  } else if ('meta' in cached) {
    log.info({ checkpoint: plainDir }, 'teacher guard: reusing the plain student of the same budget');
    plainMeta = cached.meta;
  } else {
    log.info({ checkpoint: plainDir, why: cached.why }, 'teacher guard: training a plain student of the same budget to compare the teacher with');
    trained = await trainStudent(data, student, { ...opts, checkpointDir: plainDir, resume: false });
    plainMeta = loadCheckpoint<StudentMeta>(plainDir).meta;
  }
  const plain = plainMeta.metrics.val[metric];
  const better = teacher > plain;
  const decision = better ? 'kd' : opts.forceKd ? 'forced' : 'skipped';
  const report: GuardReport = { metric, teacher, plain, relative: plain > 0 ? (teacher - plain) / plain : 0, teacherBetter: better, decision, plainCheckpoint: plainDir, cached: 'meta' in cached, teacherModel: t.model ?? 'promptmm-teacher' };
  const fields = { metric, teacher: round(teacher), plainStudent: round(plain), relative: round(report.relative) };
  if (better) log.info(fields, `teacher guard: the teacher's validation ${metric} is above the plain student's: distilling`);
  else if (opts.forceKd) log.warn(fields, `teacher guard: the teacher's validation ${metric} is NOT above the plain student's of the same budget; distilling anyway (--force-kd)`);
  else log.warn(fields, `teacher guard: the teacher's validation ${metric} is NOT above the plain student's of the same budget: a weaker teacher cannot teach it, so KD (many times the plain training) is skipped and the plain student is kept as the student (--force-kd distils anyway)`);
  return { report, trained };
}

/** Where the student guard keeps a distilled student it did not keep as the run's student. */
export function kdAsideDir(repo: string, name: string): string {
  return join(repo, name, 'checkpoints', 'kd-student');
}

export interface StudentGuardReport {
  metric: string;
  /** the distilled student's and the plain student's validation metric */
  kd: number;
  plain: number;
  /** which one is the run's student now (what export serves) */
  kept: 'kd' | 'plain';
  /** kept plain: where the distilled student was moved */
  aside?: string;
}

/**
 * After KD from a teacher that passed the teacher guard: a better teacher does not make a better
 * student (scientific, 2026-12-03: teacher +3.5 % on validation, its student −3.3 %), so the
 * distilled student is kept only when its validation metric is above the plain student's of the
 * same budget; otherwise it is moved to `aside` and the plain student becomes the student.
 */
export function studentGuard(studentDir: string, plainDir: string, aside: string, metric: string, log: TrainOptions['log']): StudentGuardReport {
  const kd = loadCheckpoint<StudentMeta>(studentDir).meta.metrics.val[metric];
  const plain = loadCheckpoint<StudentMeta>(plainDir).meta.metrics.val[metric];
  if (typeof kd !== 'number' || typeof plain !== 'number') throw new Error(`student guard: no validation ${metric} in ${typeof kd !== 'number' ? studentDir : plainDir}`);
  const fields = { metric, kdStudent: round(kd), plainStudent: round(plain), relative: round(plain > 0 ? (kd - plain) / plain : 0) };
  if (kd > plain) {
    log.info(fields, `student guard: the distilled student's validation ${metric} is above the plain student's: it is the student`);
    return { metric, kd, plain, kept: 'kd' };
  }
  rmSync(aside, { recursive: true, force: true });
  renameSync(studentDir, aside);
  adoptPlain(plainDir, studentDir);
  log.warn({ ...fields, aside }, `student guard: the distilled student's validation ${metric} is NOT above the plain student's of the same budget: the plain student is the student (the distilled one is kept at ${aside}; --force-kd keeps it as the student)`);
  return { metric, kd, plain, kept: 'plain', aside };
}

/** The plain student becomes the run's student (what eval, dump and export read): copied whole, then renamed into place. */
export function adoptPlain(plainDir: string, studentDir: string): void {
  const tmp = `${studentDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(plainDir, tmp, { recursive: true });
  rmSync(studentDir, { recursive: true, force: true });
  renameSync(tmp, studentDir);
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
