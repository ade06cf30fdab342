/**
 * The item-encoder stage (issue 18), run by `promptmm train` right after the student stage (the
 * distilled or the plain LightGCN student) when the dataset has modality features, unless
 * `--no-item-encoder`: reads the student checkpoint's final embeddings, fits the encoder
 * (trainer/models/item-encoder.ts) and writes it to `models/NAME/checkpoints/item-encoder/`, with
 * the sha256 of the student weights it was fit to (the export refuses to pair it with another).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../../data/dataset.js';
import type { Logger } from '../../core/log.js';
import { checkFields, defaultsFor, isSequentialModel, type ItemEncoderDesign } from '../../core/defaults.js';
import { loadCheckpoint, saveCheckpoint, type NamedArray } from '../checkpoint.js';
import { studentKind } from '../models/registry.js';
import { fitItemEncoder, type EncoderValidation, type FitReport, type ItemEncoderConfig } from '../models/item-encoder.js';
import type { ItemEncoderWeights } from '../../repository/onnx-item-encoder-graph.js';
import { datasetRef, type DatasetRef, type StudentMeta } from './student.js';

/** Where each item-encoder setting is declared (core/defaults.ts). */
export const ITEM_ENCODER_FIELDS = {
  design: 'itemEncoderDesign',
  hidden: 'itemEncoderHidden',
  epochs: 'itemEncoderEpochs',
  lr: 'itemEncoderLr',
  batch: 'itemEncoderBatch',
  bprWeight: 'itemEncoderBprWeight',
  holdout: 'itemEncoderHoldout',
  evalEvery: 'itemEncoderEvalEvery',
  criterion: 'itemEncoderCriterion',
  seed: 'seed',
} as const;

export const ITEM_ENCODER_DEFAULTS: ItemEncoderConfig = defaultsFor(ITEM_ENCODER_FIELDS);

export interface ItemEncoderMeta {
  kind: 'item-encoder';
  design: ItemEncoderDesign;
  dataset: DatasetRef;
  /** sha256 of the student checkpoint's weights.bin the encoder was fit to */
  studentWeights: string;
  modalities: { name: string; dim: number }[];
  /** output widths of the dense layers (none for the neighbors design) */
  layers: number[];
  /** each output rescaled to this norm (a calibration choice, trainer/models/item-encoder.ts) */
  outputNorm?: number;
  /** the neighbors design's table and settings (its arrays: enc/nb/keys, enc/nb/values) */
  neighbors?: { n: number; keyDim: number; outDim: number; k: number; tau: number; rescale: boolean };
  /** the neighbors design's validation grid */
  grid?: FitReport['grid'];
  config: ItemEncoderConfig;
  validation: EncoderValidation;
  bestEpoch?: number;
  lambda?: number;
  outputScale?: number;
  curve: FitReport['curve'];
  seconds: number;
}

export interface ItemEncoderReport {
  checkpoint: string;
  design: ItemEncoderDesign;
  validation: EncoderValidation;
  bestEpoch?: number;
  lambda?: number;
  outputScale?: number;
  outputNorm?: number;
  neighbors?: ItemEncoderMeta['neighbors'];
  seconds: number;
}

export function itemEncoderCheckpointDir(repo: string, name: string): string {
  return join(repo, name, 'checkpoints', 'item-encoder');
}

export function studentWeightsHash(studentDir: string): string {
  return createHash('sha256').update(readFileSync(join(studentDir, 'weights.bin'))).digest('hex');
}

/** The student's final user and item tables from its checkpoint (an embedding student). */
export function studentTables(studentDir: string, data: Dataset): { users: Float32Array; items: Float32Array; dim: number; meta: StudentMeta } {
  const ck = loadCheckpoint<StudentMeta>(studentDir);
  const meta = ck.meta;
  if (isSequentialModel(meta.model ?? 'lightgcn')) throw new Error(`${studentDir}: a ${meta.model} student has no item table the encoder could be fit to`);
  const model = studentKind(meta.model ?? 'lightgcn').create(data, meta.config, ck);
  try {
    const f = model.finalEmbeddings();
    const d = meta.config.dim;
    return { users: f.slice(0, data.nUsers * d), items: f.slice(data.nUsers * d), dim: d, meta };
  } finally {
    model.dispose();
  }
}

/** Fits the encoder for the student in `studentDir` on `data` (which must carry its features). */
export function fitForStudent(data: Dataset, studentDir: string, cfg: ItemEncoderConfig): { fit: FitReport; dim: number } {
  const s = studentTables(studentDir, data);
  const fit = fitItemEncoder(
    { modalities: data.modalities, nItems: data.nItems, nUsers: data.nUsers, dim: s.dim, items: s.items, users: s.users, trainByUser: data.trainByUser, valByUser: data.valByUser, itemPopularity: data.itemPopularity },
    cfg,
  );
  return { fit, dim: s.dim };
}

export function trainItemEncoder(data: Dataset, config: ItemEncoderConfig, opts: { studentDir: string; checkpointDir: string; log: Logger }): ItemEncoderReport {
  checkFields(config, ITEM_ENCODER_FIELDS);
  const { log } = opts;
  log.info({ design: config.design, modalities: data.modalities.map((m) => `${m.name}(${m.dim})`) }, 'training the item encoder');
  const { fit } = fitForStudent(data, opts.studentDir, config);
  const w = fit.weights;
  const meta: ItemEncoderMeta = {
    kind: 'item-encoder',
    design: fit.design,
    dataset: datasetRef(data),
    studentWeights: studentWeightsHash(opts.studentDir),
    modalities: w.modalities,
    layers: w.layers.map((l) => l.outDim),
    ...(w.outputNorm !== undefined ? { outputNorm: w.outputNorm } : {}),
    ...(w.neighbors ? { neighbors: { n: w.neighbors.n, keyDim: w.neighbors.keyDim, outDim: w.neighbors.outDim, k: w.neighbors.k, tau: w.neighbors.tau, rescale: w.neighbors.rescale } } : {}),
    ...(fit.grid ? { grid: fit.grid } : {}),
    config,
    validation: fit.validation,
    bestEpoch: fit.bestEpoch,
    lambda: fit.lambda,
    outputScale: fit.outputScale,
    curve: fit.curve,
    seconds: fit.seconds,
  };
  saveCheckpoint(opts.checkpointDir, meta, encoderArrays(w));
  log.info({ design: fit.design, validation: fit.validation, bestEpoch: fit.bestEpoch, lambda: fit.lambda, neighbors: meta.neighbors, seconds: +fit.seconds.toFixed(1) }, 'item encoder trained');
  return { checkpoint: opts.checkpointDir, design: fit.design, validation: fit.validation, bestEpoch: fit.bestEpoch, lambda: fit.lambda, outputScale: fit.outputScale, ...(w.outputNorm !== undefined ? { outputNorm: w.outputNorm } : {}), ...(meta.neighbors ? { neighbors: meta.neighbors } : {}), seconds: fit.seconds };
}

/** The weights as checkpoint arrays: enc/<k>/mean, enc/<k>/inv_std per modality, enc/l<i>/w, enc/l<i>/b per layer, enc/nb/keys and enc/nb/values (neighbors). */
export function encoderArrays(w: ItemEncoderWeights): NamedArray[] {
  const nb = w.neighbors;
  return [
    ...(nb
      ? [
          { name: 'enc/nb/keys', shape: [nb.n, nb.keyDim], data: nb.keys },
          { name: 'enc/nb/values', shape: [nb.n, nb.outDim], data: nb.values },
        ]
      : []),
    ...w.modalities.flatMap((m, k) => [
      { name: `enc/${k}/mean`, shape: [m.dim], data: w.mean[k] },
      { name: `enc/${k}/inv_std`, shape: [m.dim], data: w.invStd[k] },
    ]),
    ...w.layers.flatMap((l, i) => [
      { name: `enc/l${i}/w`, shape: [l.inDim, l.outDim], data: l.w },
      { name: `enc/l${i}/b`, shape: [l.outDim], data: l.b },
    ]),
  ];
}

/** The encoder of a checkpoint written by trainItemEncoder. */
export function loadItemEncoder(dir: string): { meta: ItemEncoderMeta; weights: ItemEncoderWeights } {
  const ck = loadCheckpoint<ItemEncoderMeta>(dir);
  const meta = ck.meta;
  if (meta.kind !== 'item-encoder') throw new Error(`${dir}: not an item-encoder checkpoint (kind ${String(meta.kind)})`);
  const get = (name: string) => {
    const a = ck.arrays.get(name);
    if (!a) throw new Error(`${dir}: weight ${name} missing`);
    return a;
  };
  const mean = meta.modalities.map((_, k) => get(`enc/${k}/mean`).data);
  const invStd = meta.modalities.map((_, k) => get(`enc/${k}/inv_std`).data);
  const layers = meta.layers.map((_, i) => {
    const w = get(`enc/l${i}/w`);
    return { w: w.data, b: get(`enc/l${i}/b`).data, inDim: w.shape[0], outDim: w.shape[1] };
  });
  const nb = meta.neighbors;
  const neighbors = nb ? { ...nb, keys: get('enc/nb/keys').data, values: get('enc/nb/values').data } : undefined;
  return { meta, weights: { modalities: meta.modalities, mean, invStd, layers, ...(meta.outputNorm !== undefined ? { outputNorm: meta.outputNorm } : {}), ...(neighbors ? { neighbors } : {}) } };
}
