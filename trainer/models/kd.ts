/**
 * PromptMM's three distillation losses (paper §3.3):
 *  - PairKD: KL between the teacher's and the student's pairwise probabilities
 *    σ(e_u·e_i+ − e_u·e_i−) on the BPR triplets (Bernoulli KL, mean over the batch);
 *  - ListKD: per modality, for (u, i+, K−1 negatives), list logits from the teacher's
 *    F_u^m·F_i^m and the student's e_u·e_i, softened by a temperature τ. Disentangled
 *    (eq. 6–9, 14–16): the KL splits into a binary part KL(b^T‖b^S) over
 *    (positive, all negatives) and a part among negatives KL(q^T‖q^S); the second is
 *    weighted by the teacher's b^T_− (its belief that the list's mass is on negatives),
 *    the first by `binaryWeight`. Without disentangling: the plain KL over the list;
 *  - EmbKD: scaled cosine error (1 − cos(e^S, f^m))^γ, averaged over the rows given.
 * All return scalars; the caller multiplies by λ2, λ3, λ4.
 */
import { tf } from '../engine/backend.js';

/** log σ(x) and log(1 − σ(x)) without overflow. */
const logSig = (x: tf.Tensor) => tf.neg(tf.softplus(tf.neg(x)));
const logOneMinusSig = (x: tf.Tensor) => tf.neg(tf.softplus(x));

/** Bernoulli KL(σ(xT) ‖ σ(xS)), mean over the batch. xT, xS: [B] score differences. */
export function pairKd(xT: tf.Tensor1D, xS: tf.Tensor1D): tf.Scalar {
  const pT = tf.sigmoid(xT);
  const kl = tf.add(
    tf.mul(pT, tf.sub(logSig(xT), logSig(xS))),
    tf.mul(tf.sub(1, pT), tf.sub(logOneMinusSig(xT), logOneMinusSig(xS))),
  );
  return tf.mean(kl) as tf.Scalar;
}

export interface ListKdOptions {
  temperature: number;
  disentangle: boolean;
  /** weight of the binary (positive vs negatives) part when disentangled */
  binaryWeight: number;
}

/**
 * zT, zS: [B, K] list logits, column 0 the positive. Returns the mean over users, scaled
 * by τ² as usual so that gradients keep their size across temperatures.
 */
export function listKd(zT: tf.Tensor2D, zS: tf.Tensor2D, o: ListKdOptions): tf.Scalar {
  const t = o.temperature;
  const lT = tf.logSoftmax(tf.div(zT, t)) as tf.Tensor2D;
  const lS = tf.logSoftmax(tf.div(zS, t)) as tf.Tensor2D;
  const scale = t * t;
  if (!o.disentangle) {
    return tf.mul(tf.mean(tf.sum(tf.mul(tf.exp(lT), tf.sub(lT, lS)), 1)), scale) as tf.Scalar;
  }
  const k = zT.shape[1];
  // binary part: b = (p_+, 1 − p_+)
  const lpT = tf.slice(lT, [0, 0], [-1, 1]).squeeze([1]);
  const lpS = tf.slice(lS, [0, 0], [-1, 1]).squeeze([1]);
  const pT = tf.exp(lpT);
  const lnT = log1mExp(lpT);
  const lnS = log1mExp(lpS);
  const binary = tf.add(tf.mul(pT, tf.sub(lpT, lpS)), tf.mul(tf.sub(1, pT), tf.sub(lnT, lnS)));
  // among negatives: q = softmax over columns 1..K−1
  const qT = tf.logSoftmax(tf.div(tf.slice(zT, [0, 1], [-1, k - 1]), t)) as tf.Tensor2D;
  const qS = tf.logSoftmax(tf.div(tf.slice(zS, [0, 1], [-1, k - 1]), t)) as tf.Tensor2D;
  const amongNeg = tf.sum(tf.mul(tf.exp(qT), tf.sub(qT, qS)), 1);
  // The teacher's b_−, a weight and not a path for gradients (tfjs has no stop_gradient).
  const bNeg = constant(tf.sub(1, pT));
  const perUser = tf.add(tf.mul(binary, o.binaryWeight), tf.mul(bNeg, amongNeg));
  return tf.mul(tf.mean(perUser), scale) as tf.Scalar;
}

/** (1 − cos(a_r, b_r))^γ averaged over rows; a, b: [R, d]. */
export function embKd(a: tf.Tensor2D, b: tf.Tensor2D, gamma: number): tf.Scalar {
  const eps = 1e-8;
  const dot = tf.sum(tf.mul(a, b), 1);
  const na = tf.sqrt(tf.add(tf.sum(tf.square(a), 1), eps));
  const nb = tf.sqrt(tf.add(tf.sum(tf.square(b), 1), eps));
  const err = tf.sub(1, tf.div(dot, tf.mul(na, nb)));
  return tf.mean(gamma === 1 ? err : tf.pow(tf.relu(err), gamma)) as tf.Scalar;
}

/** log(1 − e^x) for x ≤ 0, stable near 0. */
function log1mExp(x: tf.Tensor): tf.Tensor {
  const clipped = tf.minimum(x, -1e-7);
  return tf.log(tf.neg(tf.expm1(clipped)));
}

/** A copy of a tensor's values that the gradient tape does not see through. */
function constant<T extends tf.Tensor>(x: T): T {
  return tf.tensor(x.dataSync(), x.shape, x.dtype) as T;
}
