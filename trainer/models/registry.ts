/**
 * The ID students by name (`train --model`): what the student stage trains, and what eval, dump
 * and export rebuild from a checkpoint. Adding one is its file under trainer/models/, its name in
 * core/defaults.ts's STUDENT_MODELS and its line here (the Record makes the compiler ask for it).
 */
import type { StudentModelName } from '../../core/defaults.js';
import type { StudentKind } from './student-model.js';
import { lightgcnStudent } from './lightgcn.js';

export type { StudentKind, StudentModel, StudentShape } from './student-model.js';

const STUDENTS: Record<StudentModelName, StudentKind> = {
  lightgcn: lightgcnStudent,
};

export function studentKind(name: string): StudentKind {
  const kind = (STUDENTS as Record<string, StudentKind | undefined>)[name];
  if (!kind) throw new Error(`unknown student model "${name}" (known: ${Object.keys(STUDENTS).join(', ')})`);
  return kind;
}
