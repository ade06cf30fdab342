/**
 * The sequential student's multimodal distillation (issue 20, `--seq-kd kdsr | odmt`): wraps the
 * plain SASRec's Trainable with the method's variables, loss terms and schedule. KDSR
 * (trainer/models/kdsr.ts) adds correlation supervision to the same student; ODMT
 * (trainer/models/odmt.ts) trains an ID branch (the served student, `seq.*` in the checkpoint)
 * with one branch per modality and online distillation among them.
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
import { SasRec } from '../models/sasrec.js';
import { KdsrLoss, asyncScale, samplePairs } from '../models/kdsr.js';
import { kdsrTeacher } from '../models/kdsr-teacher.js';
import { Odmt, type OdmtOptions } from '../models/odmt.js';
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
