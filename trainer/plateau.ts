/**
 * Early stopping on a validation plateau measured against the split's own noise. A validation
 * metric is a mean over users, and two evaluations score the same users, so the noise of a
 * gain is the standard error of the paired per-user differences. An evaluation counts as
 * progress when it is a new best and its mean exceeds the last progress's (the reference) by
 * more than `z` of those standard errors; training stops after `patience` evaluations in a row
 * without progress. A run that keeps creeping upwards by less than the split can resolve thus
 * stops, where "any new best resets the count" runs on to the epoch cap; gains that add up past
 * the noise still count, since they are measured from the reference; and as progress implies a
 * new best, the rule never runs longer than the old one. The best state is still the highest
 * validation value (loop.ts); this rule only decides when to stop.
 *
 * With `drop` > 0 a run also stops once PLATEAU_DROP_AFTER evaluations in a row made no progress
 * and the last one is more than `drop` standard errors *below* the reference: the metric is past its
 * peak. Two evaluations, not one, so that a single noisy dip right after a progress does not end a
 * run that is still climbing. Off by default (core/defaults.ts): on the runs replayed for issue 24
 * (bench/plateau-replay.py) it saved little, and it would have stopped scientific's teacher in a dip
 * it later climbed far out of.
 */

/** Evaluations without progress before a significant drop may end the run. */
export const PLATEAU_DROP_AFTER = 2;

export interface PlateauVerdict {
  /** this evaluation beat the reference by more than z standard errors */
  progress: boolean;
  /** mean paired difference to the reference, and its standard error */
  gain: number;
  se: number;
  /** evaluations in a row without progress, this one included */
  stale: number;
  stop: boolean;
  /** the stop came from a significant drop below the reference (`drop`), not from the patience */
  dropped: boolean;
}

export class Plateau {
  private ref: Float64Array | null = null;
  private stale = 0;

  constructor(
    private readonly patience: number,
    private readonly z: number,
    private readonly drop = 0,
  ) {}

  /** Feeds one evaluation's per-user values (the same users, in the same order, every time); `newBest`: its mean beats every earlier one. */
  observe(perUser: Float64Array, newBest: boolean): PlateauVerdict {
    const ref = this.ref;
    if (!ref) {
      this.ref = perUser.slice();
      return { progress: true, gain: 0, se: 0, stale: 0, stop: false, dropped: false };
    }
    if (ref.length !== perUser.length) throw new Error(`plateau: ${perUser.length} users evaluated, the reference has ${ref.length}`);
    const { mean, se } = pairedDifference(perUser, ref);
    // A gain with no spread at all (every user moved the same) is progress when positive.
    const progress = newBest && mean > 0 && mean > this.z * se;
    if (progress) {
      this.ref = perUser.slice();
      this.stale = 0;
    } else {
      this.stale++;
    }
    const dropped = this.drop > 0 && this.stale >= PLATEAU_DROP_AFTER && mean < -this.drop * se && this.stale < this.patience;
    return { progress, gain: mean, se, stale: this.stale, stop: this.stale >= this.patience || dropped, dropped };
  }
}

/** Mean of a − b over users and its standard error (sample sd / √n). */
export function pairedDifference(a: Float64Array, b: Float64Array): { mean: number; se: number } {
  const n = a.length;
  if (n === 0) return { mean: 0, se: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i] - b[i];
  const mean = sum / n;
  if (n < 2) return { mean, se: 0 };
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (a[i] - b[i] - mean) ** 2;
  return { mean, se: Math.sqrt(ss / (n - 1) / n) };
}
