/**
 * Stage 2: the LightGCN student trained with
 *   L = L_BPR + λ2·L_PairKD + λ3·L_ListKD + λ4·L_EmbKD
 * against the frozen teacher, while the teacher's soft prompt keeps adapting to the
 * student (its weights are the only teacher weights in the optimiser, so F^m are
 * recomputed every step as the prompt changes).
 */
import { tf } from '../engine/backend.js';
import type { Dataset } from '../../data/dataset.js';
import { normalizedAdjacency } from '../../data/graph.js';
import { LightGcn, LIGHTGCN_EGO, bprFromEmbeddings, tripletIndex } from '../models/lightgcn.js';
import { gatherRows } from '../engine/gather-rows.js';
import { rowDots } from '../engine/row-dots.js';
import { BprSampler, type Triplets } from '../../data/sampler.js';
import { Rng } from '../../core/rng.js';
import { requireArray, type NamedArray } from '../checkpoint.js';
import { runLoop, type Trainable } from '../loop.js';
import { pairKd, listKd, embKd } from '../models/kd.js';
import type { Teacher, TeacherOutputs } from '../models/teacher.js';
import { stableName } from '../engine/names.js';
import { loadTeacher } from './teacher.js';
import { timed } from '../timed.js';
import { checkpointFor, datasetRef, finish, STUDENT_FIELDS, type StudentConfig, type StudentMeta, type TrainOptions, type TrainResult } from './student.js';
import { checkFields, defaultsFor } from '../../core/defaults.js';

export interface KdConfig {
  /** λ2, λ3, λ4 */
  pairWeight: number;
  listWeight: number;
  embWeight: number;
  /** τ of the list-wise softmax */
  temperature: number;
  /** K: list length (1 positive + K−1 negatives) */
  listSize: number;
  /** γ ≥ 1 of the scaled cosine error */
  gamma: number;
  /** weight of the binary part of the disentangled list-wise KD */
  binaryWeight: number;
  pair: boolean;
  list: boolean;
  disentangle: boolean;
  emb: boolean;
  /** keep tuning the teacher's soft prompt with the student (false: the prompt is frozen too) */
  adaptPrompt: boolean;
}

/** Where each distillation setting is declared (core/defaults.ts); the prompt adapts unless --no-prompt. */
export const KD_FIELDS = {
  pairWeight: 'pairWeight',
  listWeight: 'listWeight',
  embWeight: 'embWeight',
  temperature: 'temperature',
  listSize: 'listSize',
  gamma: 'gamma',
  binaryWeight: 'binaryWeight',
  pair: 'pairKd',
  list: 'listKd',
  disentangle: 'disentangle',
  emb: 'embKd',
  adaptPrompt: 'prompt',
} as const;

export const KD_DEFAULTS: KdConfig = defaultsFor(KD_FIELDS);

export type KdStudentConfig = StudentConfig & { kd: KdConfig };

class KdStudent implements Trainable {
  private last: Record<string, number> = {};
  private readonly idPart: tf.Tensor2D;
  /** the teacher's outputs when nothing of it trains (prompt frozen or absent) */
  private readonly fixed: TeacherOutputs | null;
  /** the teacher's per-step forward pass when its prompt adapts (over the rows a step reads) */
  private readonly stage2: { forward: (rows?: tf.Tensor1D) => TeacherOutputs; dispose: () => void } | null;
  /** scratch for the step's row set: the position of each node row in it, −1 when absent */
  private readonly slot: Int32Array;
  private readonly negatives: BprSampler;

  constructor(
    private readonly student: LightGcn,
    private readonly teacher: Teacher,
    private readonly data: Dataset,
    private readonly cfg: KdStudentConfig,
  ) {
    this.idPart = tf.keep(teacher.idPart());
    const adapt = cfg.kd.adaptPrompt && teacher.prompt !== null;
    this.fixed = adapt ? null : frozenOutputs(teacher, this.idPart);
    this.stage2 = adapt ? teacher.frozenForStage2(this.idPart) : null;
    this.negatives = new BprSampler(data.train.users, data.train.items, data.trainByUser, data.nItems, new Rng(cfg.seed + 17));
    this.slot = new Int32Array(data.nUsers + data.nItems).fill(-1);
  }

  get variables(): tf.Variable[] {
    const adapt = this.cfg.kd.adaptPrompt && this.teacher.prompt !== null;
    return [this.student.ego, ...(adapt ? this.teacher.prompt!.variables : [])];
  }

  get dim(): number {
    return this.student.shape.dim;
  }

  loss(t: Triplets): tf.Scalar {
    const kd = this.cfg.kd;
    const nUsers = this.data.nUsers;
    const S = this.student.propagate();
    const tripletIds = tripletIndex(t, nUsers);
    const idx = tf.tensor1d(tripletIds, 'int32');
    const sRows = gatherRows(S, idx);
    const [su, sp, sn] = tf.split(sRows, 3, 0) as tf.Tensor2D[];
    const bpr = bprFromEmbeddings({ users: su, pos: sp, neg: sn, ego: gatherRows(this.student.ego, idx) }, this.cfg.reg, t.users.length);
    const terms: Record<string, tf.Scalar> = { bpr };
    const pair = kd.pair && kd.pairWeight > 0;
    const list = kd.list && kd.listWeight > 0;
    const emb = kd.emb && kd.embWeight > 0;
    let total: tf.Scalar = bpr;
    if (pair || list || emb) {
      const lists = list ? this.lists(t) : null;
      // The teacher's outputs: all rows when fixed, else only the rows this step reads (indices remapped).
      let T: TeacherOutputs;
      let tIdx: tf.Tensor1D;
      let tUsers: tf.Tensor1D | null = null;
      let tItems: tf.Tensor1D | null = null;
      if (this.fixed) {
        T = this.fixed;
        tIdx = idx;
        if (lists) [tUsers, tItems] = [tf.tensor1d(lists.users, 'int32'), tf.tensor1d(lists.items, 'int32')];
      } else {
        const { rows, local } = this.rowSet(lists ? [tripletIds, lists.users, lists.items] : [tripletIds]);
        T = this.stage2!.forward(tf.tensor1d(rows, 'int32'));
        tIdx = tf.tensor1d(local[0], 'int32');
        if (lists) [tUsers, tItems] = [tf.tensor1d(local[1], 'int32'), tf.tensor1d(local[2], 'int32')];
      }
      if (pair) {
        const [tu, tp, tn] = tf.split(gatherRows(T.final, tIdx), 3, 0) as tf.Tensor2D[];
        const xS = tf.sum(tf.mul(su, tf.sub(sp, sn)), 1) as tf.Tensor1D;
        const xT = tf.sum(tf.mul(tu, tf.sub(tp, tn)), 1) as tf.Tensor1D;
        terms.pair = pairKd(xT, xS);
        total = tf.add(total, tf.mul(terms.pair, kd.pairWeight));
      }
      if (lists) {
        const b = t.users.length;
        const zS = listLogits(S, tf.tensor1d(lists.users, 'int32'), tf.tensor1d(lists.items, 'int32'), b, kd.listSize);
        const perModality = T.modal.map((F) => listKd(listLogits(F, tUsers!, tItems!, b, kd.listSize), zS, { temperature: kd.temperature, disentangle: kd.disentangle, binaryWeight: kd.binaryWeight }));
        terms.list = tf.div(tf.addN(perModality), perModality.length) as tf.Scalar;
        total = tf.add(total, tf.mul(terms.list, kd.listWeight));
      }
      if (emb) {
        const perModality = T.modal.map((F) => embKd(sRows, gatherRows(F, tIdx), kd.gamma));
        terms.emb = tf.div(tf.addN(perModality), perModality.length) as tf.Scalar;
        total = tf.add(total, tf.mul(terms.emb, kd.embWeight));
      }
    }
    this.last = Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v.dataSync()[0]]));
    return total;
  }

  /** For each triplet: its user's row, and [positive, the BPR negative, K−2 more negatives] as item rows. */
  private lists(t: Triplets): { users: Int32Array; items: Int32Array } {
    const b = t.users.length;
    const k = this.cfg.kd.listSize;
    const nUsers = this.data.nUsers;
    const rows = new Int32Array(b * k);
    for (let r = 0; r < b; r++) {
      rows[r * k] = nUsers + t.pos[r];
      if (k > 1) rows[r * k + 1] = nUsers + t.neg[r];
      for (let c = 2; c < k; c++) rows[r * k + c] = nUsers + this.negatives.negative(t.users[r]);
    }
    return { users: t.users, items: rows };
  }

  /** The distinct node rows of `parts` (first-seen order), and each part as positions among them. */
  private rowSet(parts: Int32Array[]): { rows: Int32Array; local: Int32Array[] } {
    const slot = this.slot;
    let n = 0;
    for (const p of parts) for (let i = 0; i < p.length; i++) if (slot[p[i]] < 0) slot[p[i]] = n++;
    const rows = new Int32Array(n);
    const local = parts.map((p) => p.map((r) => slot[r]));
    for (const p of parts) for (let i = 0; i < p.length; i++) rows[slot[p[i]]] = p[i];
    for (let i = 0; i < n; i++) slot[rows[i]] = -1; // cleared for the next step
    return { rows, local };
  }

  lossTerms(): Record<string, number> {
    return this.last;
  }

  embeddings(): Float32Array {
    return this.student.finalEmbeddings();
  }

  arrays(): NamedArray[] {
    const out: NamedArray[] = [this.student.egoArray()];
    // The prompt as adapted in stage 2 travels with the student (the teacher checkpoint keeps stage 1's).
    if (this.cfg.kd.adaptPrompt && this.teacher.prompt) out.push(...this.teacher.prompt.arrays().map((a) => ({ ...a, name: `stage2/${a.name}` })));
    return out;
  }

  dispose(): void {
    this.idPart.dispose();
    this.stage2?.dispose();
    if (this.fixed) tf.dispose([this.fixed.final, ...this.fixed.modal]);
  }
}

/** The distilled student's Trainable (for the loop and for profiling). */
export function kdTrainable(student: LightGcn, teacher: Teacher, data: Dataset, cfg: KdStudentConfig): Trainable & { embeddings(): Float32Array; dispose(): void } {
  return new KdStudent(student, teacher, data, cfg);
}

/** e_u · e_i for every (user, list item): [B, K], one row-dot op (trainer/engine/row-dots.ts). */
function listLogits(E: tf.Tensor2D, users: tf.Tensor1D, items: tf.Tensor1D, b: number, k: number): tf.Tensor2D {
  const d = E.shape[1];
  return rowDots(gatherRows(E, items).reshape([b, k, d]) as tf.Tensor3D, gatherRows(E, users));
}

/** The teacher's outputs computed once, kept past the scope that made them. */
function frozenOutputs(teacher: Teacher, idPart: tf.Tensor2D): TeacherOutputs {
  let out: TeacherOutputs | null = null;
  tf.tidy(() => {
    const o = teacher.forwardModal(idPart);
    out = { final: tf.keep(o.final), modal: o.modal.map((m) => tf.keep(m)) };
  });
  return out!;
}

export interface KdTrainOptions extends TrainOptions {
  teacherDir: string;
}

export async function trainKdStudent(data: Dataset, config: KdStudentConfig, opts: KdTrainOptions): Promise<TrainResult> {
  checkFields(config, STUDENT_FIELDS);
  checkFields(config.kd, KD_FIELDS);
  let cfg = { ...config };
  const resume = opts.resume ? checkpointFor<StudentMeta>(opts.checkpointDir, data, 'all') : undefined;
  if (resume) cfg = { ...cfg, dim: resume.meta.config.dim, layers: resume.meta.config.layers };
  // PromptMM distils into LightGCN: EmbKD and the list-wise terms use its propagated tables.
  if (cfg.model !== 'lightgcn') throw new Error(`--model ${cfg.model}: the distillation stage trains a LightGCN student (use --student-only for another model)`);
  const { teacher, meta: tmeta } = loadTeacher(opts.teacherDir, data, opts.log);
  if (tmeta.config.dim !== cfg.dim) {
    teacher.dispose();
    throw new Error(`teacher dim ${tmeta.config.dim} differs from the student's ${cfg.dim}: EmbKD compares them by cosine, train both with the same --dim`);
  }
  const n = data.nUsers + data.nItems;
  const graph = normalizedAdjacency(data.nUsers, data.nItems, data.trainByUser);
  const student = new LightGcn({ nUsers: data.nUsers, nItems: data.nItems, dim: cfg.dim, layers: cfg.layers }, graph, resume ? requireArray(resume, LIGHTGCN_EGO, [n, cfg.dim]).data : { seed: cfg.seed });
  if (resume && teacher.prompt && cfg.kd.adaptPrompt) restoreStage2Prompt(teacher, resume.arrays);
  const kd = timed(opts.log, "the frozen teacher's fixed parts computed", () => new KdStudent(student, teacher, data, cfg)).value;
  const parameters = n * cfg.dim;
  opts.log.info({ dataset: data.name, backend: opts.backend.backend, parameters, teacherParameters: teacher.parameters, teacherTest: tmeta.metrics.test, config: cfg }, 'training the distilled student');
  try {
    const res = await runLoop(data, kd, cfg, {
      checkpointDir: opts.checkpointDir,
      log: opts.log,
      title: `PromptMM distilled student on ${data.name}`,
      label: 'student(kd)',
      resume,
      progress: opts.progress,
      meta: (loop): StudentMeta => ({ kind: 'student', model: 'lightgcn', objective: 'kd', dataset: datasetRef(data), config: cfg, backend: opts.backend.backend, parameters, ...loop }),
    });
    return finish(opts, res, parameters);
  } finally {
    kd.dispose();
    student.dispose();
    teacher.dispose();
  }
}

function restoreStage2Prompt(teacher: Teacher, arrays: Map<string, NamedArray>): void {
  for (const v of teacher.prompt!.variables) {
    const a = arrays.get(`stage2/${stableName(v.name)}`);
    if (a) v.assign(tf.tensor(a.data, v.shape));
  }
}
