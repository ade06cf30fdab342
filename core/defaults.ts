/**
 * Every setting of the project, declared once: its name, CLI flag, environment variable, default,
 * validation and a one-line description. The CLI, the env vars, the library defaults and the docs/configuration.md table read this.
 */

/** A value that fails a setting's validation; the message names the flag (or variable) and the value. */
export class SettingError extends Error {
  override readonly name = 'SettingError';
}

/** The headings settings are grouped under (in the docs/configuration.md table, in this order). */
export const SECTIONS = {
  general: 'General',
  training: 'Training (`train`)',
  teacher: 'Teacher, stage 1 (`train`)',
  distillation: 'Distillation, stage 2 (`train`)',
  evaluation: 'Evaluation (`eval`)',
  export: 'Export (`export`)',
  serving: 'Serving (`serve`)',
  online: 'Online learning (`serve`)',
  finetune: 'Fine-tuning worker of replicas (`finetune`)',
  synthetic: 'Synthetic data (`generate`)',
  demo: 'Demo (`demo`)',
} as const;
export type Section = keyof typeof SECTIONS;

/** The largest cut-off K: --ks, --valid-metric, and /recommend's k (server/common/schemas.ts). */
export const MAX_K = 1000;
/** /recommend's k when a request names none. */
export const DEFAULT_K = 10;
/** Most users in one POST /recommend. */
export const MAX_BATCH_USERS = 256;
/** Most interactions in one POST /interactions. */
export const MAX_INTERACTIONS = 1000;
/** Most items in one POST /recommend/session (a sequential bundle encodes the last maxLen of them). */
export const MAX_SESSION_ITEMS = 1000;
// --- issue 18, the living catalog: bounds of item labels and request filters (one block) ---
/** Most labels one item carries (`<name>.item`, PUT /items). */
export const MAX_ITEM_LABELS = 100;
/** Longest label, in characters. */
export const MAX_LABEL_CHARS = 64;
/** Most item ids in one request's `exclude`. */
export const MAX_EXCLUDE = 1000;
/** Most labels in one request's `labels` or `exclude_labels`. */
export const MAX_FILTER_LABELS = 100;
/** Most values of one modality's feature vector in PUT /items (the body limit, 1 MiB, bounds the whole). */
export const MAX_FEATURE_VALUES = 16384;
// --- end of issue 18's block ---
/** tfjs backends, best first (see trainer/engine/backend.ts). */
export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
/** ONNX Runtime execution providers the server can use. */
export const PROVIDER_NAMES = ['cuda', 'cpu'] as const;
/** The ID students `train --model` can build; each has its file and entry in trainer/models/registry.ts. */
export const STUDENT_MODELS = ['lightgcn', 'sasrec'] as const;
export type StudentModelName = (typeof STUDENT_MODELS)[number];
/** The students whose user is the ordered sequence of its items (trained by trainer/stages/sequential.ts). */
export const SEQUENTIAL_MODELS = ['sasrec'] as const satisfies readonly StudentModelName[];
export type SequentialModelName = (typeof SEQUENTIAL_MODELS)[number];
export const isSequentialModel = (m: string): m is SequentialModelName => (SEQUENTIAL_MODELS as readonly string[]).includes(m);
/** The item encoder's designs (issue 18; trainer/models/item-encoder.ts). */
export const ITEM_ENCODER_DESIGNS = ['mlp', 'mlp-bpr', 'ridge', 'neighbors'] as const;
export type ItemEncoderDesign = (typeof ITEM_ENCODER_DESIGNS)[number];
/** What the item encoder's output scale and the neighbors design's settings are chosen by. */
export const ITEM_ENCODER_CRITERIA = ['overall', 'new-items'] as const;
export type ItemEncoderCriterion = (typeof ITEM_ENCODER_CRITERIA)[number];
/** The training losses of a sequential student. */
export const SEQ_LOSSES = ['full', 'sampled'] as const;
/** Multimodal distillation into the sequential student (issue 20): none, KDSR or ODMT. */
export const SEQ_KD = ['none', 'kdsr', 'odmt'] as const;
export type SeqKdName = (typeof SEQ_KD)[number];

export interface Setting<T> {
  /** the library name (a key of SETTINGS) */
  readonly key: string;
  readonly section: Section;
  /** commander flag with its argument (`--dim <n>`); `--no-x` for a switch that is on by default; none: library only */
  readonly flag?: string;
  readonly env?: string;
  /** undefined: no default (required, or computed where it is used; then `defaultText` says how) */
  readonly default: T;
  readonly defaultText?: string;
  readonly description: string;
  readonly required?: boolean;
  readonly choices?: readonly string[];
  /** true for on/off switches (a flag without an argument; env `1`/`0`) */
  readonly boolean?: boolean;
  /** the flag, else the env var, else the key: what an error message names */
  readonly label: string;
  /** text → value, or a SettingError naming the label (or `as`: the env var the text came from) */
  parse(raw: string, as?: string): T;
  /** throws a SettingError naming the label when a value (from code, not text) is out of range */
  check(value: unknown): void;
  /** the value as a user would type it (the docs/configuration.md table) */
  show(value: T): string;
  /** what values it takes, e.g. "integer ≥ 1" (the docs/configuration.md table) */
  readonly values: string;
  /** how commander prints the default, where its own JSON rendering would mislead */
  readonly helpDefault?: string;
}

interface Spec<T> {
  section: Section;
  flag?: string;
  env?: string;
  default: T;
  defaultText?: string;
  description: string;
  required?: boolean;
}

/** A setting before it knows its key: parse/check take the label to name in errors. */
interface Draft<T> extends Spec<T> {
  choices?: readonly string[];
  boolean?: boolean;
  parseAs(raw: string, label: string): T;
  checkAs(value: unknown, label: string): void;
  show(value: T): string;
  values: string;
  helpDefault?: (value: T) => string;
}

const fail = (msg: string): never => {
  throw new SettingError(msg);
};

function inRange(x: number, r: Range): boolean {
  return (r.min === undefined || x >= r.min) && (r.above === undefined || x > r.above) && (r.max === undefined || x <= r.max) && (r.below === undefined || x < r.below);
}

interface Range {
  min?: number;
  /** exclusive lower bound */
  above?: number;
  max?: number;
  /** exclusive upper bound */
  below?: number;
}

/** "a positive number", "a non-negative number", "a number ≥ 1", "a number ≥ 0 and < 1". */
function numberPhrase(r: Range): string {
  const noMax = r.max === undefined && r.below === undefined;
  if (noMax && r.above === 0 && r.min === undefined) return 'a positive number';
  if (noMax && r.min === 0 && r.above === undefined) return 'a non-negative number';
  const parts = [r.min !== undefined && `≥ ${r.min}`, r.above !== undefined && `> ${r.above}`, r.max !== undefined && `≤ ${r.max}`, r.below !== undefined && `< ${r.below}`].filter(Boolean);
  return `a number ${parts.join(' and ')}`;
}

function intPhrase(min: number, max?: number): string {
  return max === undefined ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
}

/** "an integer ≥ 1" → "integer ≥ 1" */
const bare = (phrase: string): string => phrase.replace(/^an? /, '');

const shown = (v: unknown): string => (typeof v === 'string' ? `"${v}"` : JSON.stringify(v));

function int<T extends number | undefined = number>(spec: Spec<NoInfer<T>> & { min: number; max?: number }): Draft<T> {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= spec.min && (spec.max === undefined || n <= spec.max);
  return {
    ...spec,
    parseAs: (raw, label) => {
      const n = raw.trim() === '' ? NaN : Number(raw);
      return ok(n) ? (n as T) : fail(`${label} must be ${intPhrase(spec.min, spec.max)}, got "${raw}"`);
    },
    checkAs: (v, label) => void (ok(v) || fail(`${label} must be ${intPhrase(spec.min, spec.max)}, got ${shown(v)}`)),
    show: (v) => (v === undefined ? '' : String(v)),
    values: bare(intPhrase(spec.min, spec.max)),
  };
}

function num(spec: Spec<number> & Range): Draft<number> {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && inRange(n, spec);
  return {
    ...spec,
    parseAs: (raw, label) => {
      const n = raw.trim() === '' ? NaN : Number(raw);
      return ok(n) ? n : fail(`${label} must be ${numberPhrase(spec)}, got "${raw}"`);
    },
    checkAs: (v, label) => void (ok(v) || fail(`${label} must be ${numberPhrase(spec)}, got ${shown(v)}`)),
    show: (v) => String(v),
    values: bare(numberPhrase(spec)),
  };
}

function str<T extends string | undefined = string>(spec: Spec<NoInfer<T>>): Draft<T> {
  return {
    ...spec,
    parseAs: (raw, label) => (raw.length ? (raw as T) : fail(`${label} must not be empty`)),
    checkAs: (v, label) => void ((v === undefined && spec.default === undefined) || (typeof v === 'string' && v.length) || fail(`${label} must be a non-empty string, got ${shown(v)}`)),
    show: (v) => v ?? '',
    values: 'text',
  };
}

function choice<const C extends readonly string[]>(spec: Spec<C[number]> & { choices: C }): Draft<C[number]> {
  const ok = (v: unknown): v is C[number] => typeof v === 'string' && spec.choices.includes(v);
  const msg = (label: string, got: string) => `${label} must be one of ${spec.choices.join(', ')}, got ${got}`;
  return {
    ...spec,
    parseAs: (raw, label) => (ok(raw) ? raw : fail(msg(label, `"${raw}"`))),
    checkAs: (v, label) => void (ok(v) || fail(msg(label, shown(v)))),
    show: (v) => v,
    values: spec.choices.join(', '),
  };
}

/** An on/off switch: as a flag it takes no argument; as an env var `1`/`true` or `0`/`false`. */
function bool(spec: Spec<boolean>): Draft<boolean> {
  if (spec.flag?.startsWith('--no-') && spec.default !== true) throw new Error(`${spec.flag}: a --no- switch must default to on`);
  return {
    ...spec,
    boolean: true,
    parseAs: (raw, label) => {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['', '0', 'false', 'no', 'off'].includes(v)) return false;
      return fail(`${label} must be 1 or 0, got "${raw}"`);
    },
    checkAs: (v, label) => void (typeof v === 'boolean' || fail(`${label} must be true or false, got ${shown(v)}`)),
    show: (v) => (v ? 'on' : 'off'),
    values: spec.flag ? 'switch' : '1 or 0',
  };
}

/** Comma-separated cut-offs K, each from 1 to MAX_K. */
function kList(spec: Spec<number[]>): Draft<number[]> {
  const ok = (ks: unknown): ks is number[] => Array.isArray(ks) && ks.length > 0 && ks.every((k) => Number.isInteger(k) && k >= 1 && k <= MAX_K);
  const phrase = `comma-separated positive integers ≤ ${MAX_K}`;
  return {
    ...spec,
    parseAs: (raw, label) => {
      const ks = raw.split(',').map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
      return ok(ks) ? ks : fail(`${label} must be ${phrase}, got "${raw}"`);
    },
    checkAs: (v, label) => void (ok(v) || fail(`${label} must be ${phrase}, got ${shown(v)}`)),
    show: (v) => v.join(','),
    values: `K,K,… each 1 to ${MAX_K}`,
  };
}

/** A comma-separated list of names from `choices`, tried in order. */
function nameList<const C extends readonly string[]>(spec: Spec<C[number][]> & { names: C }): Draft<C[number][]> {
  const { names, ...rest } = spec; // not `choices`: those offer one value, this takes a list of them
  const ok = (v: unknown): v is C[number][] => Array.isArray(v) && v.length > 0 && v.every((p) => names.includes(p));
  const phrase = `list ${names.join(' and/or ')}`;
  return {
    ...rest,
    parseAs: (raw, label) => {
      const v = raw.split(',').map((p) => p.trim()).filter(Boolean);
      return ok(v) ? v : fail(`${label} must ${phrase}, got "${raw}"`);
    },
    checkAs: (v, label) => void (ok(v) || fail(`${label} must ${phrase}, got ${shown(v)}`)),
    show: (v) => v.join(','),
    values: `comma-separated: ${names.join(', ')}`,
    helpDefault: (v) => JSON.stringify(v.join(',')),
  };
}

/** `recall@K` or `ndcg@K`: the validation metric that early stopping and checkpoints follow. */
function metric(spec: Spec<string>): Draft<string> {
  return {
    ...spec,
    parseAs: (raw, label) => (parseMetric(raw) ? raw : fail(`${label} must be recall@K or ndcg@K (K from 1 to ${MAX_K}), got "${raw}"`)),
    checkAs: (v, label) => void ((typeof v === 'string' && parseMetric(v)) || fail(`${label} must be recall@K or ndcg@K, got ${shown(v)}`)),
    show: (v) => v,
    values: 'recall@K or ndcg@K',
  };
}

function parseMetric(m: string): { name: 'recall' | 'ndcg'; k: number } | null {
  const r = /^(recall|ndcg)@(\d+)$/.exec(m);
  if (!r) return null;
  const k = Number(r[2]);
  return k >= 1 && k <= MAX_K ? { name: r[1] as 'recall' | 'ndcg', k } : null;
}

/** The validation metric must be one the evaluation computes: its K among the cut-offs. */
export function checkValidMetric(validMetric: string, ks: readonly number[]): void {
  const m = parseMetric(validMetric);
  if (!m) fail(`${SETTINGS.validMetric.label} must be recall@K or ndcg@K, got "${validMetric}"`);
  if (!ks.includes(m!.k)) {
    fail(`${SETTINGS.validMetric.label} ${validMetric} needs K = ${m!.k} among ${SETTINGS.ks.label} (got ${SETTINGS.ks.label} ${ks.join(',')}): add ${m!.k} to ${SETTINGS.ks.label} or pick another metric`);
  }
}

type Drafts = Record<string, Draft<any>>;
type Defined<D extends Drafts> = { readonly [K in keyof D]: D[K] extends Draft<infer T> ? Setting<T> : never };

function define<D extends Drafts>(drafts: D): Defined<D> {
  const out: Record<string, Setting<unknown>> = {};
  for (const [key, d] of Object.entries(drafts)) {
    const label = d.flag ? d.flag.split(/[ <[]/)[0] : (d.env ?? key);
    const { parseAs, checkAs, helpDefault, ...rest } = d;
    const s: Setting<unknown> = {
      ...rest,
      key,
      label,
      parse: (raw: string, as: string = label) => parseAs(raw, as),
      check: (v: unknown) => checkAs(v, label),
      helpDefault: helpDefault && d.default !== undefined ? helpDefault(d.default) : undefined,
    };
    if (d.default !== undefined) s.check(d.default); // a default that fails its own validation is a bug here
    out[key] = s;
  }
  return out as Defined<D>;
}

/**
 * Where a student kind trains best with other loop settings than the LightGCN defaults below: used
 * when the flag is not given (the CLI) and by the stage's own defaults (the library). sasrec: the
 * yardstick's batch, budget and early stopping (evaluations every 5 epochs, 6 without a better
 * validation NDCG@10), with the cut-offs sequential papers report.
 */
export const MODEL_DEFAULTS = {
  lightgcn: {},
  sasrec: { batch: 256, epochs: 200, patience: 6, ks: [10, 20, 50], validMetric: 'ndcg@10' },
} as const satisfies Record<StudentModelName, Partial<Record<'batch' | 'epochs' | 'patience' | 'evalEvery' | 'lr' | 'ks' | 'validMetric', unknown>>>;

function modelDefaultsText(m: StudentModelName): string {
  return Object.entries(MODEL_DEFAULTS[m])
    .map(([k, v]) => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} ${Array.isArray(v) ? v.join(',') : v}`)
    .join(', ');
}

export const SETTINGS = define({
  // General
  repo: str({ section: 'general', flag: '--repo <dir>', env: 'PROMPTMM_REPO', default: 'models', description: 'model repository' }),
  backend: choice({ section: 'general', flag: '--backend <name>', env: 'PROMPTMM_BACKEND', choices: ['auto', ...BACKEND_NAMES], default: 'auto', description: 'tfjs backend; auto picks the best that loads' }),
  logLevel: choice({ section: 'general', env: 'PROMPTMM_LOG_LEVEL', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'level of the JSON log lines on stderr' }),
  debug: bool({ section: 'general', env: 'PROMPTMM_DEBUG', default: false, description: 'print the stack trace of an error after its one-line message' }),
  noSimdKernels: bool({ section: 'general', env: 'PROMPTMM_NO_SIMD_KERNELS', default: false, description: 'use the JavaScript loops instead of the SIMD WebAssembly kernels (for comparison)' }),

  // Training: the loop every stage runs, and the student
  stage: choice({ section: 'training', flag: '--stage <stage>', choices: ['all', 'unimodal', 'teacher', 'student'], default: 'all', description: 'which stage(s) to run (unimodal: the uni-modal teachers of --teacher ckd alone)' }),
  studentOnly: bool({ section: 'training', flag: '--student-only', default: false, description: 'train the plain LightGCN student (BPR only, no teacher) with the same budget' }),
  resume: bool({ section: 'training', flag: '--resume', default: false, description: 'continue each stage from its checkpoint (a finished stage is skipped)' }),
  model: choice({ section: 'training', flag: '--model <name>', choices: STUDENT_MODELS, default: 'lightgcn', description: `the ID student of the plain stage (--student-only), rebuilt by eval, dump and export; the distillation stage trains lightgcn; sasrec is the sequential student (no teacher yet), with its own defaults ${modelDefaultsText('sasrec')} where those flags are not given` }),
  dim: int({ section: 'training', flag: '--dim <n>', min: 1, default: 64, description: 'embedding size (teacher and student)' }),
  layers: int({ section: 'training', flag: '--layers <n>', min: 0, default: 2, description: 'student graph propagation layers' }),
  lr: num({ section: 'training', flag: '--lr <x>', above: 0, default: 1e-3, description: 'student Adam learning rate' }),
  reg: num({ section: 'training', flag: '--reg <x>', min: 0, default: 1e-4, description: 'L2 weight on the batch ego embeddings' }),
  batch: int({ section: 'training', flag: '--batch <n>', min: 1, default: 2048, description: 'BPR triplets per step' }),
  epochs: int({ section: 'training', flag: '--epochs <n>', min: 1, default: 400, description: 'maximum epochs of each stage' }),
  seed: int({ section: 'training', flag: '--seed <n>', min: 0, default: 2024, description: 'random seed (initialisation and sampling)' }),
  evalEvery: int({ section: 'training', flag: '--eval-every <n>', min: 1, default: 5, description: 'evaluate on validation every n epochs' }),
  // 5: the students' longest run without progress before a later best was 3 evaluations (Tiktok, scientific; docs/results.md "Training speed, part 2").
  patience: int({ section: 'training', flag: '--patience <n>', min: 1, default: 5, description: 'early stop after n evaluations in a row without progress on --valid-metric (a gain of more than --plateau-z standard errors; docs/method.md); the teacher has its own, --teacher-patience' }),
  // One standard error of the paired per-user difference: gains the validation split cannot tell from noise do not hold a run open.
  plateauZ: num({ section: 'training', flag: '--plateau-z <x>', min: 0, default: 1, description: 'an evaluation is progress when its --valid-metric beats the last progress by more than x standard errors of the per-user differences (0: any gain)' }),
  // Off by default: scientific's teacher at --teacher-lr 2e-3 fell 1.9 SE below its epoch-5 peak, then climbed far above it (best 130); a drop rule would have stopped it at 15.
  plateauDrop: num({ section: 'training', flag: '--plateau-drop <x>', min: 0, default: 0, description: 'also stop once 2 evaluations in a row made no progress and the last is more than x standard errors of the per-user differences below the last progress (0: off; docs/method.md)' }),
  checkpointEvery: int({ section: 'training', flag: '--checkpoint-every <n>', min: 0, default: 25, description: 'also write the best state so far to the checkpoint every n epochs, for --resume after a crash (0: only at the end of the stage)' }),
  ks: kList({ section: 'training', flag: '--ks <list>', default: [20, 50], description: 'cut-offs K of Recall@K / NDCG@K' }),
  validMetric: metric({ section: 'training', flag: '--valid-metric <m>', default: 'recall@20', description: 'validation metric for early stopping and the best checkpoint: recall@K or ndcg@K, K one of --ks' }),
  ignoreUnknownFiles: bool({ section: 'training', flag: '--ignore-unknown-files', default: false, description: 'train without the .npy files of the dataset folder that no --feature, dataset.json or <name>_feat.npy name makes a modality (by default they are an error)' }),
  // Sequential student (--model sasrec): the yardstick's settings (../shared/yardstick/sasrec_ref.py)
  seqBlocks: int({ section: 'training', flag: '--seq-blocks <n>', min: 1, default: 2, description: 'sasrec: causal self-attention blocks' }),
  seqHeads: int({ section: 'training', flag: '--seq-heads <n>', min: 1, default: 1, description: 'sasrec: attention heads (must divide --dim)' }),
  maxLen: int({ section: 'training', flag: '--max-len <n>', min: 1, default: 50, description: "sasrec: the most recent n items of a user's sequence are its input (longer ones are truncated)" }),
  seqDropout: num({ section: 'training', flag: '--seq-dropout <x>', min: 0, below: 1, default: 0.2, description: 'sasrec: dropout on the embeddings, attention weights, feed-forward and residual branches' }),
  ffDim: int<number | undefined>({ section: 'training', flag: '--ff-dim <n>', min: 1, default: undefined, defaultText: '--dim', description: 'sasrec: width of the feed-forward layer' }),
  seqLoss: choice({ section: 'training', flag: '--seq-loss <loss>', choices: SEQ_LOSSES, default: 'full', description: 'sasrec: full softmax cross-entropy over the items, or sampled softmax with a log-Q correction (large catalogs)' }),
  seqNegatives: int({ section: 'training', flag: '--seq-negatives <n>', min: 1, default: 256, description: 'sasrec --seq-loss sampled: negatives per step, shared by the batch, drawn by train popularity' }),

  // Sequential distillation (issue 20: --seq-kd kdsr | odmt; trainer/models/kdsr.ts, odmt.ts).
  // KDSR: Hu et al., ECIR 2024 (τ 1.5, D 8 from its code's config; 100 codes from the issue);
  // ODMT: Ji et al., ACM MM 2023 (T 0.4 from its code's run scripts).
  seqKd: choice({ section: 'training', flag: '--seq-kd <method>', choices: SEQ_KD, default: 'none', description: 'sasrec: multimodal distillation into the ID-only sequential student: kdsr (modality-correlation supervision), odmt (ID-aware multimodal transformer, online distillation; the ID branch is served); needs feature files' }),
  kdsrHolisticWeight: num({ section: 'training', flag: '--kdsr-holistic-weight <x>', min: 0, default: 1, description: 'kdsr λ1: weight of the holistic correlation loss' }),
  kdsrDissectedWeight: num({ section: 'training', flag: '--kdsr-dissected-weight <x>', min: 0, default: 0.5, description: 'kdsr λ2: weight of the dissected correlation-code loss' }),
  kdsrTau: num({ section: 'training', flag: '--kdsr-tau <x>', above: 0, default: 1.5, description: 'kdsr τ: temperature of the holistic soft match' }),
  // hard: better on validation than soft on every seed of scientific at convergence (N@10 0.1070/0.1026/0.1057 against 0.0985/0.0975/0.1020; docs/results.md)
  kdsrMatch: choice({ section: 'training', flag: '--kdsr-match <m>', choices: ['soft', 'hard'], default: 'hard', description: "kdsr holistic match: hard (squared error of the student's pair correlation against ±1: +1 where the teacher's is at least the anchor's median) or soft (squared error of both correlations over τ: the KDSR code's)" }),
  kdsrSubvectors: int({ section: 'training', flag: '--kdsr-subvectors <n>', min: 1, default: 8, description: "kdsr D: sub-vectors per feature vector; a modality's dimension must be divisible by it" }),
  kdsrCodes: int({ section: 'training', flag: '--kdsr-codes <n>', min: 2, max: 255, default: 100, description: 'kdsr x: correlation codes (codebook size)' }),
  kdsrQuantizer: choice({ section: 'training', flag: '--kdsr-quantizer <q>', choices: ['vq', 'kmeans'], default: 'vq', description: 'kdsr: codebook training, online vector quantization (mini-batch, decaying step) or Lloyd k-means (k-means++ start)' }),
  kdsrAnchors: int({ section: 'training', flag: '--kdsr-anchors <n>', min: 1, default: 256, description: "kdsr: anchor items drawn per batch from the batch's sequences" }),
  kdsrPartners: int({ section: 'training', flag: '--kdsr-partners <n>', min: 2, default: 16, description: "kdsr: partners per anchor, half from the anchor's own sequence (co-occurring), half uniform over the catalog" }),
  kdsrAsyncEpochs: int({ section: 'training', flag: '--kdsr-async-epochs <n>', min: 1, default: 10, description: "kdsr η: the item embeddings' learning rate rises linearly from 0.1× to 1× over this many epochs" }),
  holistic: bool({ section: 'training', flag: '--no-holistic', default: true, description: 'kdsr ablation: no holistic correlation loss' }),
  dissected: bool({ section: 'training', flag: '--no-dissected', default: true, description: 'kdsr ablation: no dissected correlation-code loss' }),
  async: bool({ section: 'training', flag: '--no-async', default: true, description: "kdsr ablation: the item embeddings learn at the full rate from the start" }),
  odmtTemperature: num({ section: 'training', flag: '--odmt-temperature <x>', above: 0, default: 0.4, description: "odmt T: temperature of the online distillation's softened predictions" }),
  odmtRampup: int({ section: 'training', flag: '--odmt-rampup <n>', min: 0, default: 10, description: "odmt: epochs of the online distillation's sigmoid ramp-up exp(-5(1-e/n)²) (0: full weight at once)" }),
  odmtLayers: int({ section: 'training', flag: '--odmt-layers <n>', min: 1, default: 1, description: 'odmt: transformer blocks of the ID-aware multimodal transformer (over each item\'s ID, text, image tokens)' }),
  // features: better on validation on every seed of scientific (ID-branch N@10 +0.0025 to +0.0054; docs/results.md)
  odmtInit: choice({ section: 'training', flag: '--odmt-init <i>', choices: ['random', 'features'], default: 'features', description: "odmt: ID embeddings start as the average of the item's projected modality features (features), or random (the ODMT code's default)" }),
  imtMask: bool({ section: 'training', flag: '--no-imt-mask', default: true, description: 'odmt ablation: every token attends every token (no ID-aware mask: modality tokens may attend the ID token)' }),
  onlineKd: bool({ section: 'training', flag: '--no-online-kd', default: true, description: 'odmt ablation: the branches train on their own cross-entropy only' }),
  // distilled: a second stage after ODMT, a fresh ID-only SASRec learning from the trained branches' ensemble (the
  // paper's fused score: the best ODMT predictor on validation, but three encoders and a 3·dim table to serve)
  odmtStudent: choice({ section: 'training', flag: '--odmt-student <s>', choices: ['branch', 'distilled'], default: 'branch', description: "odmt: the served student is the ID branch trained beside the modality branches (branch), or a fresh ID-only SASRec distilled from the trained ODMT's ensemble in a second stage (distilled; the ODMT run is kept in checkpoints/odmt-teacher)" }),
  odmtDistillWeight: num({ section: 'training', flag: '--odmt-distill-weight <x>', min: 0, default: 1, description: "odmt --odmt-student distilled: weight of the distillation term T²·CE(softmax(ensemble/T), softmax(student/T)) beside the student's cross-entropy" }),
  odmtDistillTemperature: num({ section: 'training', flag: '--odmt-distill-temperature <x>', above: 0, default: 1, description: "odmt --odmt-student distilled: temperature T of the ensemble's and the student's softened predictions" }),
  odmtDistillStart: choice({ section: 'training', flag: '--odmt-distill-start <s>', choices: ['random', 'branch'], default: 'random', description: "odmt --odmt-student distilled: the student starts from random weights (random) or from the trained ID branch (branch)" }),
  progress: bool({ section: 'training', flag: '--no-progress', default: true, description: 'no progress bar (it is drawn only on a terminal anyway)' }),

  // Teacher (stage 1)
  // Deeper than the student: on Tiktok's validation split (seed 2024) 2, 3, 4 layers gave
  // Recall@20 0.0934, 0.0980, 0.1026 (NDCG@20 0.0382, 0.0429, 0.0468), and a stronger
  // teacher is what lifts the distilled student (docs, tuning).
  teacherLayers: int({ section: 'teacher', flag: '--teacher-layers <n>', min: 0, default: 4, description: 'teacher graph propagation layers' }),
  // 8: the teachers went up to 7 evaluations without progress before a later best (Tiktok at --teacher-lr 1e-3, scientific at 2e-3); the students up to 3.
  teacherPatience: int({ section: 'teacher', flag: '--teacher-patience <n>', min: 1, default: 8, description: "the teacher's --patience (its validation creeps up for longer than the students')" }),
  // 1e-3, not 2e-3: at 2e-3 the Tiktok two-stage run takes half the teacher epochs and its distilled student does better on validation, but scientific's teacher then passes the guard and its distilled student is worse than the plain one on validation (−2.6 SE): docs/results.md "Training speed, part 2".
  teacherLr: num({ section: 'teacher', flag: '--teacher-lr <x>', above: 0, default: 1e-3, description: 'teacher Adam learning rate' }),
  teacherDropout: num({ section: 'teacher', flag: '--teacher-dropout <x>', min: 0, below: 1, default: 0.2, description: "dropout on the teacher's reduced modality features" }),
  teacherModalWeight: num({ section: 'teacher', flag: '--teacher-modal-weight <x>', min: 0, default: 0.5, description: "weight of the teacher's per-modality BPR terms" }),
  teacherModalMix: num({ section: 'teacher', flag: '--teacher-modal-mix <x>', min: 0, default: 0.1, description: "weight of the row-normalised modality representations in the teacher's E^T" }),
  promptRate: num({ section: 'teacher', flag: '--prompt-rate <x>', min: 0, default: 0.1, description: 'λ1: rate of the soft prompt added to the features' }),
  promptDim: int({ section: 'teacher', flag: '--prompt-dim <n>', min: 1, default: 64, description: 'width of η (PCA) and of the prompt module' }),
  prompt: bool({ section: 'teacher', flag: '--no-prompt', default: true, description: 'ablation: no soft prompt (teacher without it; nothing adapts in stage 2)' }),

  // CKD teacher option and teacher-quality guard (issue 21; docs/method.md "CKD teacher").
  // The CKD weights are the reference code's defaults (CRIPAC-DIG/Balanced-Multimodal-Rec,
  // codes/utility/parser.py: kd_ratio 0.01, kl 5, pred_temp 0.1), not tuned per dataset.
  teacherKind: choice({ section: 'teacher', flag: '--teacher <kind>', choices: ['promptmm', 'ckd'], default: 'promptmm', description: 'stage 1: the PromptMM teacher, or CKD (one uni-modal teacher per modality first, checkpoints/unimodal-<modality>/, then the multimodal teacher distilled from them with counterfactual modality weights)' }),
  ckdWeight: num({ section: 'teacher', flag: '--ckd-weight <x>', min: 0, default: 0.01, description: "--teacher ckd: weight of the whole CKD distillation term (the reference's kd_ratio)" }),
  ckdKl: num({ section: 'teacher', flag: '--ckd-kl <x>', min: 0, default: 5, description: "--teacher ckd: weight of the generic distillation next to the hinge (the reference's kl)" }),
  ckdTemperature: num({ section: 'teacher', flag: '--ckd-temperature <x>', above: 0, default: 0.1, description: "--teacher ckd: τ of the generic distillation (the reference's pred_temp)" }),
  forceKd: bool({ section: 'teacher', flag: '--force-kd', default: false, description: "run stage 2 even when the teacher's validation metric is not above the plain student's of the same budget (by default that KD is skipped and the plain student is kept)" }),
  guardThread: bool({ section: 'teacher', flag: '--no-guard-thread', default: true, description: "train the teacher guard's plain student on a worker thread beside the teacher (tfjs-wasm computes on one core; the same figures as one after the other)" }),
  // end of issue 21's block

  // Distillation (stage 2). Chosen on Tiktok's validation split (docs: list 1/emb 0.1, no
  // EmbKD, pair 3/list 0.3/τ 2 were worse).
  pairWeight: num({ section: 'distillation', flag: '--pair-weight <x>', min: 0, default: 1, description: 'λ2: weight of PairKD' }),
  listWeight: num({ section: 'distillation', flag: '--list-weight <x>', min: 0, default: 0.1, description: 'λ3: weight of ListKD' }),
  embWeight: num({ section: 'distillation', flag: '--emb-weight <x>', min: 0, default: 0.3, description: 'λ4: weight of EmbKD' }),
  temperature: num({ section: 'distillation', flag: '--temperature <x>', above: 0, default: 1, description: 'τ of the list-wise softmax' }),
  listSize: int({ section: 'distillation', flag: '--list-size <n>', min: 2, default: 10, description: 'K: list length of ListKD (1 positive + K−1 negatives)' }),
  gamma: num({ section: 'distillation', flag: '--gamma <x>', min: 1, default: 2, description: "γ ≥ 1 of EmbKD's scaled cosine error" }),
  binaryWeight: num({ section: 'distillation', flag: '--binary-weight <x>', min: 0, default: 2, description: 'weight of the binary part of the disentangled ListKD' }),
  pairKd: bool({ section: 'distillation', flag: '--no-pairkd', default: true, description: 'ablation: no PairKD' }),
  listKd: bool({ section: 'distillation', flag: '--no-listkd', default: true, description: 'ablation: no ListKD' }),
  disentangle: bool({ section: 'distillation', flag: '--no-disentangle', default: true, description: 'ablation: plain list-wise KL instead of the disentangled one' }),
  embKd: bool({ section: 'distillation', flag: '--no-embkd', default: true, description: 'ablation: no EmbKD' }),

  // ---- Item encoder (issue 18): modality features → the student's item space, trained right after the student stage ----
  itemEncoder: bool({ section: 'training', flag: '--no-item-encoder', default: true, description: 'no item encoder: by default, when the dataset has modality features, train (after the student) the encoder that places items added after export from their features (item_encoder.onnx in the bundle)' }),
  itemEncoderDesign: choice({ section: 'training', flag: '--item-encoder-design <d>', choices: ITEM_ENCODER_DESIGNS, default: 'neighbors', description: "item encoder: neighbors (the softmax(sim/τ)-weighted mean of the student vectors of the K training items with the most similar features; K, τ and a rescale to their norm chosen on held-out items), mlp (fit to the student's item vectors, MSE + cosine), mlp-bpr (the same + BPR on the training interactions with the student's user vectors frozen), ridge (closed-form linear regression, λ chosen on held-out items)" }),
  itemEncoderHidden: int({ section: 'training', flag: '--item-encoder-hidden <n>', min: 1, default: 256, description: 'item encoder: width of the MLP hidden layer' }),
  itemEncoderEpochs: int({ section: 'training', flag: '--item-encoder-epochs <n>', min: 1, default: 60, description: 'item encoder: most passes over the training items (the best, by validation, is kept; then refit on every training item)' }),
  itemEncoderLr: num({ section: 'training', flag: '--item-encoder-lr <x>', above: 0, default: 1e-3, description: 'item encoder: Adam learning rate' }),
  itemEncoderBatch: int({ section: 'training', flag: '--item-encoder-batch <n>', min: 1, default: 64, description: 'item encoder: items (and BPR pairs) per step' }),
  itemEncoderBprWeight: num({ section: 'training', flag: '--item-encoder-bpr-weight <x>', min: 0, default: 0.5, description: 'item encoder mlp-bpr: weight of the BPR term' }),
  itemEncoderHoldout: num({ section: 'training', flag: '--item-encoder-holdout <x>', above: 0, below: 1, default: 0.1, description: "item encoder: share of the training items (items with train interactions) held out as its validation: their vectors from features alone, ranked on the valid split" }),
  itemEncoderEvalEvery: int({ section: 'training', flag: '--item-encoder-eval-every <n>', min: 1, default: 5, description: 'item encoder: validate every n epochs' }),
  itemEncoderCriterion: choice({ section: 'training', flag: '--item-encoder-criterion <c>', choices: ITEM_ENCODER_CRITERIA, default: 'overall', description: "item encoder: what its output scale (and the neighbors design's K, τ, rescale) is chosen by on the held-out items: overall (Recall@20 over every valid interaction, the held-out items encoded: new items must not crowd out the rest) or new-items (Recall@20 of the valid interactions on held-out items alone, which rewards inflating their norms)" }),
  // ---- end item encoder ----

  // Evaluation
  split: choice({ section: 'evaluation', flag: '--split <split>', choices: ['val', 'test'], default: 'test', description: 'split to evaluate' }),

  // Export: the bundle's HNSW index
  hnswM: int({ section: 'export', flag: '--hnsw-m <n>', min: 2, default: 32, description: 'HNSW graph degree M' }),
  hnswEfConstruction: int({ section: 'export', flag: '--hnsw-ef-construction <n>', min: 1, default: 200, description: 'HNSW build-time ef' }),
  hnswEf: int({ section: 'export', flag: '--hnsw-ef <n>', min: 1, default: 100, description: 'query-time ef recorded in the manifest for the server' }),
  hnswSeed: int({ section: 'export', min: 0, default: 100, description: 'random seed of the HNSW construction' }),

  // Serving
  serveName: str<string | undefined>({ section: 'serving', flag: '--name <name>', env: 'PROMPTMM_MODEL', required: true, default: undefined, description: 'model name' }),
  host: str({ section: 'serving', flag: '--host <host>', env: 'PROMPTMM_HOST', default: '127.0.0.1', description: 'interface to listen on' }),
  port: int({ section: 'serving', flag: '--port <n>', env: 'PROMPTMM_PORT', min: 0, max: 65535, default: 8080, description: 'TCP port (0 = any free port)' }),
  retrieval: choice({ section: 'serving', flag: '--retrieval <mode>', env: 'PROMPTMM_RETRIEVAL', choices: ['ann', 'exact'], default: 'ann', description: 'default retrieval: ann (HNSW) or exact (ONNX)' }),
  ef: int<number | undefined>({ section: 'serving', flag: '--ef <n>', env: 'PROMPTMM_HNSW_EF', min: 1, default: undefined, defaultText: "the bundle manifest's", description: 'HNSW query ef' }),
  providers: nameList({ section: 'serving', flag: '--providers <list>', env: 'PROMPTMM_ONNX_PROVIDERS', names: PROVIDER_NAMES, default: ['cuda', 'cpu'], description: 'ONNX Runtime execution providers, tried in order' }),
  pollSeconds: int({ section: 'serving', flag: '--poll-seconds <n>', env: 'PROMPTMM_POLL_SECONDS', min: 0, default: 30, description: 'also poll the repository for new versions every n seconds (0 = watch only)' }),
  cacheUsers: int({ section: 'serving', flag: '--cache-users <n>', env: 'PROMPTMM_CACHE_USERS', min: 0, default: 100_000, description: 'users whose recommendation lists are cached (LRU, per version; 0 = off)' }),
  logDir: str<string | undefined>({ section: 'serving', flag: '--log-dir <dir>', env: 'PROMPTMM_LOG_DIR', default: undefined, defaultText: '<repo>/<name>/interactions', description: 'durable interaction log' }),
  // POST /recommend's cost, in list entries (users × k): the work of a batch grows with it (server/routes/recommend.ts)
  maxBatchEntries: int({ section: 'serving', flag: '--max-batch-entries <n>', env: 'PROMPTMM_MAX_BATCH_ENTRIES', min: 1, default: MAX_BATCH_USERS * 100, description: 'most users × k in one POST /recommend (above: a 400 naming k); 256 users at k 100' }),
  batchSliceEntries: int({ section: 'serving', flag: '--batch-slice-entries <n>', env: 'PROMPTMM_BATCH_SLICE_ENTRIES', min: 1, default: 1024, description: 'batch work between two event-loop turns (a user counts k + 100 entries): ~1.5 ms of ANN work' }),
  maxBatchEntriesInFlight: int({ section: 'serving', flag: '--max-batch-entries-in-flight <n>', env: 'PROMPTMM_MAX_BATCH_ENTRIES_IN_FLIGHT', min: 1, default: 4 * MAX_BATCH_USERS * 100, description: 'entries of all batches computed at once; a batch beyond it gets a 503 with Retry-After' }),
  // HTTP connections (server/connections.ts): slow or idle clients cannot hold sockets, SIGTERM drains
  headersTimeoutMs: int({ section: 'serving', flag: '--headers-timeout-ms <n>', env: 'PROMPTMM_HEADERS_TIMEOUT_MS', min: 0, max: 2 ** 31 - 1, default: 10_000, description: 'request line and headers must arrive within n ms, else a 408 (0 = off)' }),
  // the whole request, body included: a 1 MiB body (the body limit) at ≥ 70 kB/s
  requestTimeoutMs: int({ section: 'serving', flag: '--request-timeout-ms <n>', env: 'PROMPTMM_REQUEST_TIMEOUT_MS', min: 0, max: 2 ** 31 - 1, default: 15_000, description: 'the whole request, body included, within n ms, else a 408; at least the headers timeout (0 = off)' }),
  // above the usual load-balancer idle timeout (60 s on AWS ALB and nginx), so the balancer closes first
  keepAliveTimeoutMs: int({ section: 'serving', flag: '--keep-alive-timeout-ms <n>', env: 'PROMPTMM_KEEP_ALIVE_TIMEOUT_MS', min: 1, max: 2 ** 31 - 1, default: 65_000, description: 'an idle keep-alive connection is closed after n ms' }),
  socketTimeoutMs: int({ section: 'serving', flag: '--socket-timeout-ms <n>', env: 'PROMPTMM_SOCKET_TIMEOUT_MS', min: 0, max: 2 ** 31 - 1, default: 20_000, description: 'no byte moving either way for n ms while a request is open closes it (a client that stops reading its answer) (0 = off)' }),
  maxConnections: int({ section: 'serving', flag: '--max-connections <n>', env: 'PROMPTMM_MAX_CONNECTIONS', min: 1, max: 2 ** 31 - 1, default: 10_000, description: 'connections beyond n are closed on accept, unanswered' }),
  // plus up to 5 s to close the log and learner: under Kubernetes' default 30 s grace period
  drainTimeoutMs: int({ section: 'serving', flag: '--drain-timeout-ms <n>', env: 'PROMPTMM_DRAIN_TIMEOUT_MS', min: 1, max: 2 ** 31 - 1, default: 20_000, description: 'on SIGTERM, answer what was received for at most n ms; exit 1 if that was not enough' }),
  // one: measured on 2 cores shared with the load generator, ONNX Runtime's default (a spinning thread per core) halved exact's throughput
  onnxThreads: int({ section: 'serving', flag: '--onnx-threads <n>', env: 'PROMPTMM_ONNX_THREADS', min: 0, max: 256, default: 1, description: "threads of an ONNX run (exact scorer, sequence encoder), not spinning while idle (0 = ONNX Runtime's default: one per core, spinning)" }),
  // one: a second core takes the HNSW searches off the event loop (server/retrieval/search-threads.ts); each thread holds a copy of the index
  searchThreads: int({ section: 'serving', flag: '--search-threads <n>', env: 'PROMPTMM_SEARCH_THREADS', min: 0, max: 64, default: 1, description: 'worker threads that run the ANN searches, each with its own copy of the HNSW index (0 = on the event loop)' }),
  // 0: every append of an event-loop turn in one fdatasync (the flush runs in that turn's check phase)
  commitWindowMs: num({ section: 'serving', flag: '--commit-window-ms <ms>', env: 'PROMPTMM_COMMIT_WINDOW_MS', min: 0, max: 50, default: 0, description: 'group commit of the interaction log: appends arriving within this many ms of the first share one write + fdatasync (0 = those of one event-loop turn); an acknowledgement waits at most this much longer' }),
  logOnCorrupt: choice({ section: 'serving', flag: '--log-on-corrupt <mode>', env: 'PROMPTMM_LOG_ON_CORRUPT', choices: ['fail', 'skip'], default: 'fail', description: 'damage before acknowledged records of the interaction log (serve, train --interactions): fail (refuse, naming segment and byte) or skip (quarantine those records, keep every position)' }),
  // Replicas: the interaction log on a Redis stream shared by several servers (repository/redis-stream-log.ts)
  sharedLog: str<string | undefined>({ section: 'serving', flag: '--log <url>', env: 'PROMPTMM_LOG', default: undefined, defaultText: 'the local segment log (--log-dir)', description: 'the interaction log on a Redis stream shared by replicas: redis://HOST:PORT/DB?stream=NAME (serve, finetune, train --interactions)' }),
  allowVolatileLog: bool({ section: 'serving', flag: '--allow-volatile-log', env: 'PROMPTMM_ALLOW_VOLATILE_LOG', default: false, description: 'accept a Redis server that does not fsync every write (appendonly yes + appendfsync always): acknowledged interactions may then be lost' }),
  followBlockMs: int({ section: 'serving', min: 10, max: 60_000, default: 1_000, description: 'a replica waits at most this long on the shared stream per read (also how soon it notices a stop)' }),
  leaseSeconds: int({ section: 'finetune', flag: '--lease-seconds <n>', env: 'PROMPTMM_LEASE_SECONDS', min: 2, max: 3600, default: 30, description: 'promptmm finetune: the round lease expires this long after its holder stops renewing it (renewed every third of it); another worker then takes over' }),
  applyWaitMs: int({ section: 'serving', min: 0, max: 60_000, default: 2_000, description: 'a write on a shared log is answered once this replica applied it, or after this many ms (it is durable either way)' }),
  token: str<string | undefined>({ section: 'serving', env: 'PROMPTMM_TOKEN', default: undefined, defaultText: 'unset: those endpoints are off', description: 'turns on the admin and write endpoints (POST /interactions, POST /admin/reload, POST /admin/finetune) behind "Authorization: Bearer <token>"' }),

  // Online learning while serving
  onlineSteps: int({ section: 'online', flag: '--online-steps <n>', env: 'PROMPTMM_ONLINE_STEPS', min: 0, default: 5, description: 'BPR steps on a user vector per new interaction' }),
  roundEvery: int({ section: 'online', flag: '--round-every <n>', env: 'PROMPTMM_ROUND_EVERY', min: 0, default: 20_000, description: 'background fine-tuning round every n interactions (0 = off)' }),
  roundSeconds: int({ section: 'online', flag: '--round-seconds <n>', env: 'PROMPTMM_ROUND_SECONDS', min: 0, default: 60, description: 'or n seconds after the first new interaction (0 = off)' }),
  roundLr: num({ section: 'online', flag: '--round-lr <x>', env: 'PROMPTMM_ROUND_LR', above: 0, default: 0.2, description: 'learning rate of a fine-tuning round' }),
  roundEpochs: int({ section: 'online', flag: '--round-epochs <n>', env: 'PROMPTMM_ROUND_EPOCHS', min: 1, default: 10, description: 'passes over the recent interactions in a round' }),
  roundReplay: int({ section: 'online', flag: '--round-replay <n>', env: 'PROMPTMM_ROUND_REPLAY', min: 0, default: 1, description: 'old (user, item) pairs replayed per recent one in a round' }),
  onlineMix: num({ section: 'online', min: 0, default: 0.5, description: "graph step weight: a new item moves its user's vector toward it by mix/√(n+1)" }),
  onlineLr: num({ section: 'online', above: 0, default: 0.05, description: 'learning rate of the immediate BPR steps on a user vector' }),
  onlineReg: num({ section: 'online', min: 0, default: 1e-4, description: 'L2 weight of the online BPR steps' }),
  // ~0.85 KiB of RSS each on a 64-d Tiktok-sized bundle (bench:users): ~85 MiB at the cap.
  maxOnlineUsers: int({ section: 'online', flag: '--max-online-users <n>', env: 'PROMPTMM_MAX_ONLINE_USERS', min: 0, default: 100_000, description: 'users first seen online kept per version, least recently updated evicted first (a cold start until the next retrain absorbs them); 0 = no cap' }),
  // ~10 µs a record: a slice holds the event loop ~10 ms (bench:replay).
  replaySlice: int({ section: 'online', flag: '--replay-slice <n>', env: 'PROMPTMM_REPLAY_SLICE', min: 1, default: 1000, description: 'log records applied per event-loop turn while a version is brought up to date (the old one serves meanwhile)' }),
  snapshotEvery: int({ section: 'online', flag: '--snapshot-every <n>', env: 'PROMPTMM_SNAPSHOT_EVERY', min: 0, default: 50_000, description: 'snapshot the online state after n records, so a restart replays from there (0 = off)' }),
  snapshotSeconds: int({ section: 'online', flag: '--snapshot-seconds <n>', env: 'PROMPTMM_SNAPSHOT_SECONDS', min: 0, default: 300, description: 'or n seconds after a change (0 = off; shutdown still writes one)' }),
  snapshotDir: str<string | undefined>({ section: 'online', flag: '--snapshot-dir <dir>', env: 'PROMPTMM_SNAPSHOT_DIR', default: undefined, defaultText: '<repo>/<name>/online-state', description: 'where snapshots of the online state are kept (deleting it is safe: a restart replays more of the log)' }),
  rebuildShare: num({ section: 'online', min: 0, max: 1, default: 0.1, description: 'a round that changed at least this share of the items rebuilds the ANN index on a worker thread' }),
  // Off by default (1): items a round leaves at their old place in the index cost recall fast
  // (bench:recall --rounds on Tiktok: 0.98 with every round refreshed, 0.45 after one round left
  // stale); 0.25 on a 1M catalog keeps its ~7-min rebuilds to a quarter of a core, at that cost
  rebuildDuty: num({ section: 'online', flag: '--rebuild-duty <share>', env: 'PROMPTMM_REBUILD_DUTY', min: 0.001, max: 1, default: 1, description: "the most of one core ANN index rebuilds may take: after a rebuild of T s the next waits T·(1/share − 1) s, a freshly loaded version counting as just rebuilt; rounds meanwhile re-link in place (1 = back to back; below 1 answers lose recall while items wait: docs/operations.md)" }),
  reindexMove: num({ section: 'online', min: 0, default: 0.01, description: 'an item is re-indexed only if it drifted from its indexed vector by at least this share of its norm' }),
  // ~2.4 ms a re-link on the 1M-item index (and as much on each search thread's copy): 1000 is ~400 items a round there; off by default, as rebuildDuty
  reindexBudgetMs: int({ section: 'online', flag: '--reindex-budget-ms <ms>', env: 'PROMPTMM_REINDEX_BUDGET_MS', min: 0, default: 0, description: "event-loop time a fine-tuning round may spend re-linking moved items in the ANN index, most drifted first; the rest wait for a later round, or for the rebuild once they are rebuildShare of the catalog (0 = no limit; a limit costs recall while items wait: docs/operations.md)" }),

  // Synthetic data
  users: int({ section: 'synthetic', flag: '--users <n>', min: 1, default: 600, description: 'users' }),
  items: int({ section: 'synthetic', flag: '--items <n>', min: 1, default: 400, description: 'items' }),
  interactionsPerUser: int({ section: 'synthetic', flag: '--interactions-per-user <n>', min: 1, default: 20, description: 'mean interactions per user' }),
  generateSeed: int({ section: 'synthetic', flag: '--seed <n>', min: 0, default: 1, description: 'random seed' }),
  dtype: choice({ section: 'synthetic', flag: '--dtype <t>', choices: ['float16', 'float32', 'float64'], default: 'float32', description: 'feature dtype' }),

  // Demo: a small catalog trains well with larger steps than Tiktok's defaults
  demoName: str({ section: 'demo', flag: '--name <name>', default: 'demo', description: 'model name' }),
  demoEpochs: int({ section: 'demo', flag: '--epochs <n>', min: 1, default: 40, description: 'maximum epochs of each stage' }),
  demoLr: num({ section: 'demo', above: 0, default: 5e-3, description: 'Adam learning rate of both stages' }),
  demoBatch: int({ section: 'demo', min: 1, default: 1024, description: 'BPR triplets per step' }),
  demoEvalEvery: int({ section: 'demo', min: 1, default: 5, description: 'evaluate on validation every n epochs' }),
  demoPatience: int({ section: 'demo', min: 1, default: 3, description: 'early stop after n evaluations without a better validation metric' }),
  demoUsers: int({ section: 'demo', min: 1, default: 1500, description: 'users of the generated dataset' }),
  demoItems: int({ section: 'demo', min: 1, default: 1000, description: 'items of the generated dataset' }),
  demoInteractionsPerUser: int({ section: 'demo', min: 1, default: 20, description: 'mean interactions per user of the generated dataset' }),
  demoDataSeed: int({ section: 'demo', min: 0, default: 1, description: 'random seed of the generated dataset' }),
});

// A per-model default that fails its setting's validation is a bug here, as for the defaults above.
for (const d of Object.values(MODEL_DEFAULTS)) for (const [k, v] of Object.entries(d)) SETTINGS[k as keyof typeof SETTINGS].check(v);

/** A student kind's own loop defaults (MODEL_DEFAULTS), arrays copied. */
export function modelDefaults(m: StudentModelName): Partial<Record<keyof (typeof MODEL_DEFAULTS)['sasrec'], unknown>> {
  return Object.fromEntries(Object.entries(MODEL_DEFAULTS[m]).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]));
}

export type SettingKey = keyof typeof SETTINGS;
export type SettingValue<K extends SettingKey> = (typeof SETTINGS)[K] extends Setting<infer T> ? T : never;

/** The default of every setting, by key. */
export const DEFAULTS = Object.freeze(Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, s.default]))) as { readonly [K in SettingKey]: SettingValue<K> };

/** A config type's fields mapped to the settings that hold their values (e.g. a teacher's `layers` → `teacherLayers`). */
export type Fields = Record<string, SettingKey>;
export type ValuesOf<F extends Fields> = { -readonly [P in keyof F]: SettingValue<F[P]> };

/** The defaults of a config type, from its field map (arrays copied, so no caller shares one). */
export function defaultsFor<F extends Fields>(fields: F): ValuesOf<F> {
  return fieldsFrom(DEFAULTS, fields);
}

/** A config from values keyed by setting (e.g. the parsed CLI options). */
export function fieldsFrom<F extends Fields>(values: { readonly [K in SettingKey]?: unknown }, fields: F): ValuesOf<F> {
  const out: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(fields)) {
    const v = values[key];
    out[field] = Array.isArray(v) ? [...v] : v;
  }
  return out as ValuesOf<F>;
}

/** Validates a config's fields against their settings; the error names the flag. */
export function checkFields(cfg: object, fields: Fields): void {
  const values = cfg as Record<string, unknown>;
  for (const [field, key] of Object.entries(fields)) {
    const s: Setting<unknown> = SETTINGS[key];
    if (values[field] === undefined && s.default === undefined) continue;
    s.check(values[field]);
  }
}

/** A setting's value from its environment variable (empty or unset: the default). */
export function fromEnv<K extends SettingKey>(key: K, env: NodeJS.ProcessEnv = process.env): SettingValue<K> {
  const s = SETTINGS[key] as Setting<SettingValue<K>>;
  const raw = s.env ? env[s.env] : undefined;
  return raw === undefined || raw === '' ? s.default : s.parse(raw, s.env);
}
