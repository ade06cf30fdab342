/**
 * CKD (Zhang, Liu, Liu, Wu, Wang, "Modality-Balanced Learning for Multimedia Recommendation",
 * ACM MM 2024; code github CRIPAC-DIG/Balanced-Multimodal-Rec, codes/train_kd.py): the
 * multimodal teacher trained as the "multimodal student" of one frozen uni-modal teacher per
 * modality. On top of the teacher's own loss (teacher.ts), per modality m:
 *
 *  - modality-specific distillation (hinge): on the BPR triplets, the multimodal model's
 *    branch of m must rank the positive over the negative at least by as much as the
 *    uni-modal teacher does: max(0, x^T_m − x^S_m), x = e_u·e_i+ − e_u·e_i−;
 *  - generic distillation: on random (user, item j, item k) triplets, the Bernoulli cross
 *    entropy between σ(x^T_m/τ) and σ(x^S_m/τ);
 *  - counterfactual learning-speed weights: per triplet, c_m = (x − x_{−m}) / x_m clamped to
 *    [1e−8, 10] (x the joint score, x_{−m} the score with m removed, x_m m's branch), and
 *    w_m = M·c_m⁻¹ / Σ_k c_k⁻¹, so a modality that moves the joint score little for how well
 *    its branch ranks (under-optimized) gets more distillation. For M = 2 this is the
 *    reference's ratio_t = 1 − (c_t − c_v)/(c_t + c_v), ratio_v = 2 − ratio_t. No gradient
 *    flows through the weights (the reference detaches them).
 *
 *  L_CKD = ratio · Σ_m mean_b( w_{m,b} · (hinge_{m,b} + kl · KL_m) ).
 *
 * The branches in this architecture: E^T = ID part + mix·Σ_m F^m/‖F^m‖, so m's branch is
 * ID part + mix·F^m/‖F^m‖ (the others removed) and x_{−m} reads E^T − mix·F^m/‖F^m‖. The
 * reference removes a modality by replacing its features (and user preference) with their
 * mean; on z-scored features the mean is 0, which leaves only the bias of the reduction:
 * dropping the term is the same removal without that constant.
 */
import { tf } from '../engine/backend.js';
import { gatherRows } from '../engine/gather-rows.js';
import { tripletRows } from './lightgcn.js';
import { rowNormalize, type TeacherOutputs } from './teacher.js';
import type { Triplets } from '../../data/sampler.js';
import type { Rng } from '../../core/rng.js';

export interface CkdLossConfig {
  /** kd_ratio of the reference: weight of the whole CKD term */
  weight: number;
  /** kl of the reference: weight of the generic distillation inside it */
  kl: number;
  /** pred_temp of the reference: τ of the generic distillation */
  temperature: number;
}

/** The reference's clamp of the counterfactual coefficients. */
export const CKD_COEFF_MIN = 1e-8;
export const CKD_COEFF_MAX = 10;

/**
 * The counterfactual modality weights of a batch: `joint[b]`, `branch[m][b]` (m alone) and
 * `removed[m][b]` (m removed) are the triplets' scores; returns w[m][b], summing to M over m
 * for every triplet.
 */
export function counterfactualWeights(joint: ArrayLike<number>, branch: ArrayLike<number>[], removed: ArrayLike<number>[]): Float32Array[] {
  const M = branch.length;
  const B = joint.length;
  const w = branch.map(() => new Float32Array(B));
  const inv = new Float64Array(M);
  for (let b = 0; b < B; b++) {
    let sum = 0;
    for (let m = 0; m < M; m++) {
      let c = (joint[b] - removed[m][b]) / branch[m][b];
      if (!(c >= CKD_COEFF_MIN)) c = CKD_COEFF_MIN; // NaN (0/0) and negatives too, as torch.clamp does for the latter
      if (c > CKD_COEFF_MAX) c = CKD_COEFF_MAX;
      inv[m] = 1 / c;
      sum += inv[m];
    }
    for (let m = 0; m < M; m++) w[m][b] = (M * inv[m]) / sum;
  }
  return w;
}

/** Bernoulli cross entropy of the reference's KLDiverge: −mean(p·log q + (1−p)·log(1−q)), p = σ(t/τ), q = σ(s/τ). */
export function bernoulliCe(t: tf.Tensor1D, s: tf.Tensor1D, temperature: number): tf.Scalar {
  const p = tf.sigmoid(tf.div(t, temperature));
  const q = tf.sigmoid(tf.div(s, temperature));
  const eps = 1e-8;
  return tf.neg(tf.mean(tf.add(tf.mul(p, tf.log(tf.add(q, eps))), tf.mul(tf.sub(1, p), tf.log(tf.add(tf.sub(1, q), eps)))))) as tf.Scalar;
}

function tripletScores(rows: tf.Tensor2D): tf.Tensor1D {
  const [u, p, n] = tf.split(rows, 3, 0) as tf.Tensor2D[];
  return tf.sum(tf.mul(u, tf.sub(p, n)), 1) as tf.Tensor1D;
}

/**
 * CKD's distillation terms for the multimodal teacher, from its forward pass: the frozen
 * uni-modal teachers' E^T (one [N, d] per modality, kept by this object), and the users
 * with train items (the generic triplets' users, as the reference's kd_sample draws them).
 */
export class CkdDistiller {
  private readonly teachers: tf.Tensor2D[];
  /** mean weight of each modality over the last batch */
  lastWeights: number[];
  /** the last batch's per-modality hinge, generic distillation and weight (w_<m>), for the logs and curve.json */
  lastStats: Record<string, number> = {};

  constructor(
    teachers: Float32Array[],
    private readonly nUsers: number,
    private readonly nItems: number,
    private readonly dim: number,
    private readonly mix: number,
    private readonly activeUsers: Int32Array,
    private readonly cfg: CkdLossConfig,
    private readonly rng: Rng,
  ) {
    if (teachers.length < 2) throw new Error('CKD needs at least two modalities (one uni-modal teacher each)');
    this.teachers = teachers.map((e) => tf.keep(tf.tensor2d(e, [nUsers + nItems, dim])));
    this.lastWeights = teachers.map(() => 1);
  }

  /** Random (user, item j, item k) triplets for the generic distillation: users with train items, items uniform. */
  private genericTriplets(n: number): Triplets {
    const users = new Int32Array(n);
    const pos = new Int32Array(n);
    const neg = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      users[k] = this.activeUsers[Math.floor(this.rng.next() * this.activeUsers.length)];
      pos[k] = Math.floor(this.rng.next() * this.nItems);
      neg[k] = Math.floor(this.rng.next() * this.nItems);
    }
    return { users, pos, neg };
  }

  /** The CKD term of a batch (inside the optimiser's tape), given the teacher's forward pass. */
  terms(out: TeacherOutputs & { id: tf.Tensor2D }, t: Triplets, modalities: string[]): Record<string, tf.Scalar> {
    const idx = tripletRows(t, this.nUsers);
    const gIdx = tripletRows(this.genericTriplets(t.users.length), this.nUsers);
    const mix = this.mix;
    const branchAt = (ix: tf.Tensor1D) => {
      const id = gatherRows(out.id, ix);
      const nf = out.modal.map((f) => tf.mul(rowNormalize(gatherRows(f, ix)), mix) as tf.Tensor2D);
      return { id, nf };
    };
    // scores of the BPR triplets: joint, each branch, each modality removed
    const { id, nf } = branchAt(idx);
    const jointRows = gatherRows(out.final, idx);
    const joint = tripletScores(jointRows);
    const branch = nf.map((f) => tripletScores(tf.add(id, f) as tf.Tensor2D));
    const removed = nf.map((f) => tripletScores(tf.sub(jointRows, f) as tf.Tensor2D));
    const w = counterfactualWeights(joint.dataSync(), branch.map((x) => x.dataSync()), removed.map((x) => x.dataSync()));
    this.lastWeights = w.map((wm) => wm.reduce((s, v) => s + v, 0) / Math.max(1, wm.length));
    // the generic triplets' branch scores
    const g = branchAt(gIdx);
    const gBranch = g.nf.map((f) => tripletScores(tf.add(g.id, f) as tf.Tensor2D));
    let total: tf.Scalar | null = null;
    const stats: Record<string, number> = {};
    this.teachers.forEach((T, m) => {
      const tx = tripletScores(gatherRows(T, idx));
      const hinge = tf.relu(tf.sub(tx, branch[m])) as tf.Tensor1D;
      const kl = bernoulliCe(tripletScores(gatherRows(T, gIdx)), gBranch[m], this.cfg.temperature);
      const specific = tf.mean(tf.mul(tf.tensor1d(w[m]), hinge)) as tf.Scalar;
      const generic = tf.mul(kl, this.lastWeights[m] * this.cfg.kl) as tf.Scalar;
      const part = tf.add(specific, generic) as tf.Scalar;
      total = total ? (tf.add(total, part) as tf.Scalar) : part;
      stats[`hinge_${modalities[m]}`] = tf.mean(hinge).dataSync()[0];
      stats[`generic_${modalities[m]}`] = kl.dataSync()[0];
      stats[`w_${modalities[m]}`] = this.lastWeights[m];
    });
    this.lastStats = stats;
    return { ckd: tf.mul(total!, this.cfg.weight) as tf.Scalar };
  }

  dispose(): void {
    tf.dispose(this.teachers);
  }
}
