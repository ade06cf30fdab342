/** `promptmm train`: the teacher then the distilled student (or the plain student) on an MMRec-layout dataset. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { SETTINGS, checkValidMetric, fieldsFrom, isSequentialModel, modelDefaults, type SettingKey } from '../core/defaults.js';
import { STUDENT_FIELDS } from '../trainer/stages/student.js';
import { TEACHER_FIELDS } from '../trainer/stages/teacher.js';
import { KD_FIELDS } from '../trainer/stages/kd.js';
import { SEQUENTIAL_FIELDS } from '../trainer/stages/sequential.js';
import { runPipeline } from '../trainer/stages/pipeline.js';
import { ITEM_ENCODER_FIELDS } from '../trainer/stages/item-encoder.js';
import { mergeInteractionLog, mergeLogEntries, readAbsorbed, type Absorbed } from '../data/absorb-log.js';
import { isRedisLogUrl, RedisStreamLog } from '../repository/redis-stream-log.js';
import { parseFeatureFlag } from '../data/feature-files.js';
import { addSettings, engine, loadData, log, onTerminal, printJson, settingOption, settingValues } from './options.js';

const STAGE = ['stage', 'studentOnly', 'resume'] as const;
const SHAPE = ['model', 'dim', 'layers', 'lr', 'reg', 'batch', 'epochs', 'seed', 'evalEvery', 'patience', 'plateauZ', 'plateauDrop', 'checkpointEvery', 'ks', 'validMetric'] as const;
const TEACHER = ['teacherKind', 'ckdWeight', 'ckdKl', 'ckdTemperature', 'forceKd', 'guardThread', 'teacherLayers', 'teacherLr', 'teacherPatience', 'teacherDropout', 'teacherModalWeight', 'teacherModalMix', 'promptRate', 'promptDim'] as const;
const SEQ = ['seqBlocks', 'seqHeads', 'maxLen', 'seqDropout', 'ffDim', 'seqLoss', 'seqNegatives'] as const;
/** --seq-kd and its methods' settings (issue 20) */
const SEQ_KD = ['seqKd', 'kdsrHolisticWeight', 'kdsrDissectedWeight', 'kdsrTau', 'kdsrMatch', 'kdsrSubvectors', 'kdsrCodes', 'kdsrQuantizer', 'kdsrAnchors', 'kdsrPartners', 'kdsrAsyncEpochs', 'holistic', 'dissected', 'async', 'odmtTemperature', 'odmtRampup', 'odmtLayers', 'odmtInit', 'imtMask', 'onlineKd', 'odmtStudent', 'odmtDistillWeight', 'odmtDistillTemperature', 'odmtDistillStart'] as const;
const KD = ['pairWeight', 'listWeight', 'embWeight', 'temperature', 'listSize', 'gamma', 'binaryWeight'] as const;
const SWITCHES = ['prompt', 'pairKd', 'listKd', 'disentangle', 'embKd', 'progress'] as const;
const ENCODER = ['itemEncoder', 'itemEncoderDesign', 'itemEncoderHidden', 'itemEncoderEpochs', 'itemEncoderLr', 'itemEncoderBatch', 'itemEncoderBprWeight', 'itemEncoderHoldout', 'itemEncoderEvalEvery', 'itemEncoderCriterion'] as const;
const ALL = [...STAGE, 'ignoreUnknownFiles', 'logOnCorrupt', ...SHAPE, ...SEQ, ...SEQ_KD, ...TEACHER, ...KD, ...SWITCHES, ...ENCODER, 'repo', 'backend'] as const satisfies readonly SettingKey[];

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'Train on an MMRec-layout dataset: stage 1 the multimodal teacher (<repo>/<name>/checkpoints/teacher/), ' +
        'stage 2 the LightGCN student distilled from it (…/checkpoints/student/); --student-only trains the plain student; ' +
        '--model sasrec trains the sequential student (SASRec on each user\'s item sequence; --seq-kd kdsr or odmt distils the item features into it)',
    )
    .requiredOption('--data <dir>', 'dataset folder (<name>.inter + <modality>_feat.npy, or .npy files named by --feature or dataset.json)')
    .requiredOption('--name <name>', 'model name in the repository')
    .addOption(settingOption('repo'));
  addSettings(cmd, STAGE);
  cmd.option(
    '--feature <name=file>',
    'a modality from a .npy file of any name, e.g. --feature text=all-MiniLM-L6-v2.npy (FILE inside the dataset folder, or absolute; repeatable; overrides dataset.json\'s "features" and <name>_feat.npy)',
    (raw: string, prev: Record<string, string>) => {
      try {
        const [name, file] = parseFeatureFlag(raw);
        return { ...prev, [name]: file };
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message); // commander prints it as one line naming the option
      }
    },
    {},
  );
  addSettings(cmd, ['ignoreUnknownFiles']);
  cmd.option('--interactions <logdir>', "merge a server's interaction log into the training data as train rows (written to <repo>/<name>/data-with-log/; the export records the absorbed log position)");
  addSettings(cmd, ['logOnCorrupt', ...SHAPE, ...SEQ, ...SEQ_KD, ...TEACHER, ...KD, ...SWITCHES, ...ENCODER, 'backend']);
  cmd.action(async (o) => {
    const v = settingValues(o, ALL);
    // a student kind's own loop defaults (core/defaults.ts MODEL_DEFAULTS) where the flag (or its env var) was not given
    for (const [key, value] of Object.entries(modelDefaults(v.model))) {
      if (cmd.getOptionValueSource(new Option(SETTINGS[key as SettingKey].flag!).attributeName()) === 'default') (v as Record<string, unknown>)[key] = value;
    }
    // Refused before any work: a metric the evaluation would not compute.
    checkValidMetric(v.validMetric, v.ks);
    if (v.resume && !existsSync(join(v.repo, o.name, 'checkpoints'))) throw new Error(`--resume: no checkpoints under ${join(v.repo, o.name, 'checkpoints')}`);
    let dataDir: string = o.data;
    if (o.interactions) {
      dataDir = join(v.repo, o.name, 'data-with-log');
      const a = isRedisLogUrl(o.interactions) ? await mergeStream(o.data, o.interactions, dataDir) : mergeInteractionLog(o.data, o.interactions, dataDir, { onCorrupt: v.logOnCorrupt });
      log.info({ dir: dataDir, interactions: a.interactions, newUsers: a.newUsers, logPosition: a.logPosition }, 'interaction log merged into the training data');
      if (a.unknownItems) log.warn({ records: a.unknownItems }, 'interaction log: records naming items this dataset lacks were not absorbed (a log of another catalog?)');
    }
    // Features are loaded (and checked: NaN/Inf, row counts) whether or not a teacher is trained.
    const data = loadData(dataDir, { featureFiles: o.feature, ignoreUnknownFiles: v.ignoreUnknownFiles });
    const info = await engine(v.backend);
    const report = await runPipeline({
      data,
      repo: v.repo,
      name: o.name,
      student: fieldsFrom(v, STUDENT_FIELDS),
      teacher: fieldsFrom(v, TEACHER_FIELDS),
      kd: fieldsFrom(v, KD_FIELDS),
      sequential: isSequentialModel(v.model) ? { ...fieldsFrom(v, SEQUENTIAL_FIELDS), model: v.model } : undefined,
      stage: v.stage,
      itemEncoder: v.itemEncoder ? fieldsFrom(v, ITEM_ENCODER_FIELDS) : null,
      studentOnly: v.studentOnly,
      resume: v.resume,
      backend: info,
      log,
      progress: v.progress && onTerminal(),
      forceKd: v.forceKd,
      guardThread: v.guardThread,
    });
    printJson({ name: o.name, backend: info.backend, ...report });
  });
}

/**
 * The nightly retrain on a shared stream: every entry still in it (trimming removes only what
 * every version absorbed, so what a bundle lacks is there) up to the head when it was read.
 */
async function mergeStream(dataDir: string, url: string, outDir: string): Promise<Absorbed> {
  if (resolve(dataDir) === resolve(outDir)) throw new Error(`--data ${dataDir} is where the merged data is written: copy it elsewhere first (the merge replaces that folder)`);
  // A dataset that already absorbed a prefix of the stream (last night's merge): only what follows.
  const from = readAbsorbed(dataDir)?.logPosition ?? 0;
  const stream = await RedisStreamLog.open(url, { readOnly: true });
  try {
    const entries = await stream.read(from);
    if (entries.length && entries[0].position !== from + 1) {
      throw new Error(`the stream ${url} no longer holds positions ${from + 1}–${entries[0].position - 1} (trimmed: every version absorbed them): train on a dataset that absorbed them too, such as the data-with-log folder of the retrain that produced those versions`);
    }
    const position = entries.length ? entries[entries.length - 1].position : Math.max(from, await stream.head());
    return mergeLogEntries(dataDir, { entries, position, source: url }, outDir);
  } finally {
    await stream.close();
  }
}
