/**
 * The ID students by name (`train --model`). Embedding students (a final user and item table:
 * LightGCN) are StudentKinds that the student stage trains and eval, dump and export rebuild from a
 * checkpoint; adding one is its file under trainer/models/, its name in core/defaults.ts's
 * STUDENT_MODELS and its line here (the Record makes the compiler ask for it). Sequential students
 * (SEQUENTIAL_MODELS: sasrec) encode a user from its item sequence, so they have no user table:
 * the sequential stage trains them and trainer/stages/student-io.ts reads them back.
 */
import { isSequentialModel, type StudentModelName, type SequentialModelName } from '../../core/defaults.js';
import type { StudentKind } from './student-model.js';
import { lightgcnStudent } from './lightgcn.js';

export type { StudentKind, StudentModel, StudentShape } from './student-model.js';

/** The students with a user table. */
export type EmbeddingStudentName = Exclude<StudentModelName, SequentialModelName>;

const STUDENTS: Record<EmbeddingStudentName, StudentKind> = {
  lightgcn: lightgcnStudent,
};

export function studentKind(name: string): StudentKind {
  if (isSequentialModel(name)) throw new Error(`"${name}" is a sequential student (no user table): it is trained by the sequential stage, not built as an embedding student`);
  const kind = (STUDENTS as Record<string, StudentKind | undefined>)[name];
  if (!kind) throw new Error(`unknown student model "${name}" (known: ${Object.keys(STUDENTS).join(', ')})`);
  return kind;
}
