/**
 * The sequential student's multimodal distillation (issue 20, `--seq-kd kdsr | odmt`): wraps the
 * plain SASRec's Trainable with the method's variables, loss terms and schedule. KDSR
 * (trainer/models/kdsr.ts) adds correlation supervision to the same student; ODMT
 * (trainer/models/odmt.ts) trains an ID branch (the served student, `seq.*` in the checkpoint)
 * with one branch per modality and online distillation among them; with `--odmt-student
 * distilled` that run is the teacher of a second stage, a fresh ID-only SASRec that learns from
 * the trained branches' ensemble (distilledHooks).
 */
import { dirname, join } from 'node:path';
import type { Dataset } from '../../data/dataset.js';
import type { Rng } from '../../core/rng.js';
import type { Logger } from '../../core/log.js';
import type { SeqKdName } from '../../core/defaults.js';
import { SequenceWindows, userSequences, type SequenceBatch } from '../../data/sequences.js';
import { tf } from '../engine/backend.js';
import type { LoadedCheckpoint } from '../checkpoint.js';
import type { Trainable } from '../loop.js';
import { SasRec, crossEntropy } from '../models/sasrec.js';
import { KdsrLoss, asyncScale, samplePairs } from '../models/kdsr.js';
import { kdsrTeacher } from '../models/kdsr-teacher.js';
import { Odmt, softCrossEntropy, type OdmtOptions } from '../models/odmt.js';
import { evaluateSequentialWithUsers } from '../sequential-eval.js';

/** Where each distillation setting is declared (core/defaults.ts, the issue-20 block). */
export const SEQ_KD_FIELDS = {
  seqKd: 'seqKd',
  kdsrHolisticWeight: 'kdsrHolisticWeight',
  kdsrDissectedWeight: 'kdsrDissectedWeight',
  kdsrTau: 'kdsrTau',
  kdsrMatch: 'kdsrMatch',
  kdsrSubvectors: 'kdsrSubvectors',
  kdsrCodes: 'kdsrCodes',
  kdsrQuantizer: 'kdsrQuantizer',
  kdsrAnchors: 'kdsrAnchors',
  kdsrPartners: 'kdsrPartners',
  kdsrAsyncEpochs: 'kdsrAsyncEpochs',
  holistic: 'holistic',
  dissected: 'dissected',
  async: 'async',
  odmtTemperature: 'odmtTemperature',
  odmtRampup: 'odmtRampup',
  odmtLayers: 'odmtLayers',
  odmtInit: 'odmtInit',
  imtMask: 'imtMask',
  onlineKd: 'onlineKd',
  odmtStudent: 'odmtStudent',
  odmtDistillWeight: 'odmtDistillWeight',
  odmtDistillTemperature: 'odmtDistillTemperature',
  odmtDistillStart: 'odmtDistillStart',
} as const;

/** The distillation's settings (SequentialConfig extends it), and the student settings it reads. */
export interface SeqKdConfig extends Omit<OdmtOptions, 'seed' | 'seqDropout'> {
  seqKd: SeqKdName;
  kdsrHolisticWeight: number;
  kdsrDissectedWeight: number;
  kdsrTau: number;
  kdsrMatch: 'soft' | 'hard';
  kdsrSubvectors: number;
  kdsrCodes: number;
  kdsrQuantizer: 'vq' | 'kmeans';
  kdsrAnchors: number;
  kdsrPartners: number;
  kdsrAsyncEpochs: number;
  holistic: boolean;
  dissected: boolean;
  async: boolean;
  odmtStudent: 'branch' | 'distilled';
  odmtDistillWeight: number;
  odmtDistillTemperature: number;
  odmtDistillStart: 'random' | 'branch';
  dim: number;
  seed: number;
  maxLen: number;
  seqDropout: number;
  seqLoss: 'full' | 'sampled';
  ks: number[];
}

export interface KdHooks {
  trainable: Trainable<SequenceBatch>;
  /** what the summary adds (ODMT: each branch's and the ensemble's validation metrics at the end) */
  report(): Record<string, unknown>;
  dispose(): void;
}

/** The folder beside the checkpoints that caches KDSR's teacher statistics. */
export function kdsrCacheDir(checkpointDir: string): string {
  return join(dirname(checkpointDir), 'kdsr-teacher');
}

/** Where `--odmt-student distilled` keeps its first stage, the ODMT run (beside the student's checkpoint). */
export function odmtTeacherDir(checkpointDir: string): string {
  return join(dirname(checkpointDir), 'odmt-teacher');
}

/** The trained ID branch's weights in a finished ODMT checkpoint (`seq.*`, its item table the IMT's ID table): the student's `branch` start. */
export function idBranchValues(teacher: LoadedCheckpoint<unknown>): Map<string, Float32Array> {
  return new Map([...teacher.arrays].filter(([k]) => k.startsWith('seq.')).map(([k, v]) => [k, v.data]));
}

/**
 * `--odmt-student distilled`'s second stage: the plain student's cross-entropy plus
 * w·T²·CE(softmax(ensemble/T), softmax(student/T)) over each target position's full item
 * softmax, the ensemble the frozen ODMT of `teacher` (its three branches' mean logits, computed
 * in evaluation mode on the same batch).
 */
export function distilledHooks(data: Dataset, cfg: SeqKdConfig, model: SasRec, plain: Trainable<SequenceBatch>, teacher: LoadedCheckpoint<unknown>, o: { lossRng: Rng }): KdHooks {
  if (cfg.seqLoss !== 'full') throw new Error('--odmt-student distilled learns from the ensemble over the full item softmax; --seq-loss sampled is not supported with it');
  const values = new Map([...teacher.arrays].map(([k, v]) => [k, v.data]));
  const idBranch = new SasRec(model.shape, idBranchValues(teacher));
  const odmt = new Odmt(data, idBranch, cfg, values);
  const validation = odmt.branchReportFor(data, cfg.ks);
  const frozen = odmt.frozen();
  const { nItems: n, dim: d } = model.shape;
  const T = cfg.odmtDistillTemperature;
  let terms: Record<string, number> = {};
  const trainable: Trainable<SequenceBatch> = {
    ...plain,
    loss: (b) => {
      const { hm, tgt } = model.targetStates(b, cfg.seqDropout, o.lossRng);
      const z = tf.matMul(hm, tf.slice(model.itemTable, [0, 0], [n, d]), false, true) as tf.Tensor2D;
      const ce = crossEntropy(z, Int32Array.from(tgt));
      const q = tf.softmax(tf.div(frozen.logits(b), T)) as tf.Tensor2D;
      const kd = softCrossEntropy(z, q, T);
      terms = { ce: ce.dataSync()[0], kd: kd.dataSync()[0] };
      return tf.add(ce, tf.mul(kd, cfg.odmtDistillWeight)) as tf.Scalar;
    },
    lossTerms: () => terms,
  };
  return {
    trainable,
    report: () => ({ seqKd: 'odmt', odmtStudent: 'distilled', odmtTeacherValidation: validation }),
    dispose: () => {
      frozen.dispose();
      odmt.dispose();
      idBranch.dispose();
    },
  };
}

export function kdTrainable(
  data: Dataset,
  cfg: SeqKdConfig,
  model: SasRec,
  plain: Trainable<SequenceBatch>,
  o: { lossRng: Rng; checkpointDir: string; resume?: LoadedCheckpoint<unknown>; log: Logger },
): KdHooks {
  if (data.modalities.length === 0) {
    throw new Error(`--seq-kd ${cfg.seqKd}: dataset ${data.name} (${data.dir}) has no item feature files (<modality>_feat.npy, or files named by dataset.json or --feature); the distillation reads the items' modality features`);
  }
  const resumed = o.resume ? new Map([...o.resume.arrays].map(([k, v]) => [k, v.data])) : undefined;
  if (cfg.seqKd === 'kdsr') {
    const t0 = performance.now();
    const teacher = kdsrTeacher(data.modalities, data.nItems, { subvectors: cfg.kdsrSubvectors, codes: cfg.kdsrCodes, quantizer: cfg.kdsrQuantizer }, data.featuresHash ?? '', kdsrCacheDir(o.checkpointDir), (msg, x) => o.log.info(x ?? {}, msg));
    o.log.info({ seconds: Math.round((performance.now() - t0) / 100) / 10, modalities: teacher.modalities.map((m) => m.name) }, 'kdsr teacher ready');
    const kd = new KdsrLoss(
      teacher,
      cfg.dim,
      { holisticWeight: cfg.kdsrHolisticWeight, dissectedWeight: cfg.kdsrDissectedWeight, tau: cfg.kdsrTau, match: cfg.kdsrMatch, anchors: cfg.kdsrAnchors, partners: cfg.kdsrPartners, holistic: cfg.holistic, dissected: cfg.dissected, asyncEpochs: cfg.async ? cfg.kdsrAsyncEpochs : 0 },
      cfg.seed,
      resumed,
    );
    let recLoss = 0;
    const trainable: Trainable<SequenceBatch> = {
      ...plain,
      variables: [...model.variables, ...kd.variables],
      loss: (b) => {
        const rec = plain.loss(b);
        recLoss = rec.dataSync()[0];
        if (!cfg.holistic && !cfg.dissected) return rec;
        const pairs = samplePairs(b, data.nItems, cfg.kdsrAnchors, cfg.kdsrPartners, o.lossRng);
        return tf.add(rec, kd.loss(model.itemTable as tf.Tensor as tf.Tensor2D, pairs)) as tf.Scalar;
      },
      lossTerms: () => ({ rec: recLoss, ...kd.lossTerms() }),
      startEpoch: (epoch) => (cfg.async ? new Map([[model.itemTable, asyncScale(epoch, cfg.kdsrAsyncEpochs)]]) : undefined),
      arrays: () => [...model.arrays(), ...kd.arrays()],
    };
    return { trainable, report: () => ({ seqKd: 'kdsr' }), dispose: () => kd.dispose() };
  }
  // odmt
  if (cfg.seqLoss !== 'full') throw new Error('--seq-kd odmt trains every branch with the full softmax; --seq-loss sampled is not supported with it');
  const odmt = new Odmt(data, model, cfg, resumed).bindReport(data);
  const train = userSequences(data, 0);
  let epochNow = 1;
  const trainable: Trainable<SequenceBatch> = {
    variables: odmt.variables,
    dim: cfg.dim,
    loss: (b) => odmt.loss(b, epochNow, o.lossRng),
    lossTerms: () => odmt.lossTerms(),
    batches: (rng) => new SequenceWindows(train, cfg.maxLen, data.nItems, rng),
    startEpoch: (epoch) => {
      epochNow = epoch;
      return undefined;
    },
    evaluate: (split, ks, perUser) => odmt.withEncoder(0, (enc) => evaluateSequentialWithUsers(enc, data, { split, ks, perUser })),
    arrays: () => odmt.arrays(),
  };
  return {
    trainable,
    report: () => ({ seqKd: 'odmt', odmtValidation: odmt.branchReport(cfg.ks) }),
    dispose: () => odmt.dispose(),
  };
}
