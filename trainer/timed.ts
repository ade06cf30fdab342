/**
 * Timing of the training's set-up and bookkeeping steps (PCA, loading a teacher, an
 * evaluation, a checkpoint write): a step that took more than a second is logged at info with
 * its duration, shorter ones at debug, so a long wait is never silent and short ones stay quiet.
 */
import type { Logger } from '../core/log.js';

/** Steps slower than this are logged at info. */
const NOTICEABLE_MS = 1000;

/** Runs `fn`, logs how long `what` took, and returns its result with the seconds. */
export function timed<T>(log: Logger, what: string, fn: () => T, fields: Record<string, unknown> = {}): { value: T; seconds: number } {
  const t0 = performance.now();
  const value = fn();
  const ms = performance.now() - t0;
  const line = { ...fields, seconds: Math.round(ms) / 1000 };
  if (ms > NOTICEABLE_MS) log.info(line, `${what}: ${(ms / 1000).toFixed(1)} s`);
  else log.debug(line, what);
  return { value, seconds: ms / 1000 };
}
