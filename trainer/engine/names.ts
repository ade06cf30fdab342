/**
 * tfjs variable names are global to the engine, so two models of one kind in a process
 * (a teacher for stage 2 beside one being compared, a test building two) would collide.
 * Variables get a unique name (`base`, then `base@2`, …) and checkpoints store the stable
 * `base`.
 */
import { tf } from './backend.js';

export function uniqueVarName(base: string): string {
  const registered = tf.engine().registeredVariables;
  let name = base;
  for (let i = 2; registered[name]; i++) name = `${base}@${i}`;
  return name;
}

/** `teacher/ego@2` → `teacher/ego`; `teacher/ego@2/m` (Adam's moment) → `teacher/ego/m`. */
export function stableName(name: string): string {
  return name.replace(/@\d+(?=\/[mv]$|$)/, '');
}
