#!/usr/bin/env node
/** The `promptmm` command line: one sub-command per job, each with its own --help. */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS, initEngine, type BackendChoice } from '../trainer/engine/backend.js';
import { loadDataset, datasetSummary, type Dataset } from '../data/dataset.js';
import { createLogger } from '../core/log.js';
import { STUDENT_DEFAULTS, studentCheckpointDir, type StudentConfig } from '../trainer/stages/student.js';
import { TEACHER_DEFAULTS, type TeacherConfig } from '../trainer/stages/teacher.js';
import { KD_DEFAULTS, type KdConfig } from '../trainer/stages/kd.js';
import { runPipeline } from '../trainer/stages/pipeline.js';
import { evaluateStudent, dumpStudent } from '../trainer/stages/student-io.js';
import { evaluatePopularity } from '../trainer/eval.js';
import { generateSynthetic } from '../data/synthetic.js';
import { exportBundle } from '../export/exporter.js';
import { mergeInteractionLog } from '../data/absorb-log.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { listModels, listVersions, readManifest, RepositoryError, verifyBundle, versionDir } from '../repository/versions.js';

const log = createLogger();

function int(name: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
}

function positive(name: string, allowZero = false) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) throw new InvalidArgumentError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got "${v}"`);
    return n;
  };
}

function kList(v: string): number[] {
  const ks = v.split(',').map((s) => Number(s.trim()));
  if (!ks.length || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new InvalidArgumentError(`--ks must be comma-separated positive integers, got "${v}"`);
  return ks;
}

const backendOption = () =>
  new Option('--backend <name>', 'tfjs backend; auto picks the best that loads').choices(['auto', ...BACKENDS]).default('auto').env('PROMPTMM_BACKEND');
const repoOption = () => new Option('--repo <dir>', 'model repository').default('models').env('PROMPTMM_REPO');

async function engine(choice: string) {
  const info = await initEngine(choice as BackendChoice);
  log.info({ backend: info.backend, choice: info.choice, skipped: info.skipped }, `tfjs backend: ${info.backend}`);
  return info;
}

function loadData(dir: string, features = true): Dataset {
  const data = loadDataset(dir, { features });
  log.info({ dataset: data.name, dir: data.dir }, datasetSummary(data));
  return data;
}

const program = new Command('promptmm')
  .description('Multimodal recommender: train, evaluate, export and serve a LightGCN student distilled from a multimodal teacher (PromptMM, WWW 2024).')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (s, write) => write(s) });

program
  .command('train')
  .description(
    'Train on an MMRec-layout dataset: stage 1 the multimodal teacher (<repo>/<name>/checkpoints/teacher/), ' +
      'stage 2 the LightGCN student distilled from it (…/checkpoints/student/); --student-only trains the plain student',
  )
  .requiredOption('--data <dir>', 'dataset folder (<name>.inter + <modality>_feat.npy)')
  .requiredOption('--name <name>', 'model name in the repository')
  .addOption(repoOption())
  .addOption(new Option('--stage <stage>', 'which stage(s) to run').choices(['all', 'teacher', 'student']).default('all'))
  .option('--student-only', 'train the plain LightGCN student (BPR only, no teacher) with the same budget', false)
  .option('--resume', 'continue each stage from its checkpoint (a finished stage is skipped)', false)
  .option('--interactions <logdir>', "merge a server's interaction log into the training data as train rows (written to <repo>/<name>/data-with-log/; the export records the absorbed log position)")
  .option('--dim <n>', 'embedding size (teacher and student)', int('--dim'), STUDENT_DEFAULTS.dim)
  .option('--layers <n>', 'student graph propagation layers', int('--layers', 0), STUDENT_DEFAULTS.layers)
  .option('--lr <x>', 'student Adam learning rate', positive('--lr'), STUDENT_DEFAULTS.lr)
  .option('--reg <x>', 'L2 weight on the batch ego embeddings', positive('--reg', true), STUDENT_DEFAULTS.reg)
  .option('--batch <n>', 'BPR triplets per step', int('--batch'), STUDENT_DEFAULTS.batch)
  .option('--epochs <n>', 'maximum epochs of each stage', int('--epochs'), STUDENT_DEFAULTS.epochs)
  .option('--seed <n>', 'random seed (initialisation and sampling)', int('--seed', 0), STUDENT_DEFAULTS.seed)
  .option('--eval-every <n>', 'evaluate on validation every n epochs', int('--eval-every'), STUDENT_DEFAULTS.evalEvery)
  .option('--patience <n>', 'early stop after n evaluations without a better validation Recall@20', int('--patience'), STUDENT_DEFAULTS.patience)
  .option('--ks <list>', 'cut-offs K of Recall@K / NDCG@K', kList, STUDENT_DEFAULTS.ks)
  .option('--teacher-layers <n>', 'teacher graph propagation layers', int('--teacher-layers', 0), TEACHER_DEFAULTS.layers)
  .option('--teacher-lr <x>', 'teacher Adam learning rate', positive('--teacher-lr'), TEACHER_DEFAULTS.lr)
  .option('--teacher-dropout <x>', 'dropout on the teacher\'s reduced modality features', positive('--teacher-dropout', true), TEACHER_DEFAULTS.dropout)
  .option('--teacher-modal-weight <x>', 'weight of the teacher\'s per-modality BPR terms', positive('--teacher-modal-weight', true), TEACHER_DEFAULTS.modalWeight)
  .option('--teacher-modal-mix <x>', 'weight of the row-normalised modality representations in the teacher\'s E^T', positive('--teacher-modal-mix', true), TEACHER_DEFAULTS.modalMix)
  .option('--prompt-rate <x>', 'λ1: rate of the soft prompt added to the features', positive('--prompt-rate', true), TEACHER_DEFAULTS.promptRate)
  .option('--prompt-dim <n>', 'width of η (PCA) and of the prompt module', int('--prompt-dim'), TEACHER_DEFAULTS.promptDim)
  .option('--pair-weight <x>', 'λ2: weight of PairKD', positive('--pair-weight', true), KD_DEFAULTS.pairWeight)
  .option('--list-weight <x>', 'λ3: weight of ListKD', positive('--list-weight', true), KD_DEFAULTS.listWeight)
  .option('--emb-weight <x>', 'λ4: weight of EmbKD', positive('--emb-weight', true), KD_DEFAULTS.embWeight)
  .option('--temperature <x>', 'τ of the list-wise softmax', positive('--temperature'), KD_DEFAULTS.temperature)
  .option('--list-size <n>', 'K: list length of ListKD (1 positive + K−1 negatives)', int('--list-size', 2), KD_DEFAULTS.listSize)
  .option('--gamma <x>', 'γ ≥ 1 of EmbKD\'s scaled cosine error', positive('--gamma'), KD_DEFAULTS.gamma)
  .option('--binary-weight <x>', 'weight of the binary part of the disentangled ListKD', positive('--binary-weight', true), KD_DEFAULTS.binaryWeight)
  .option('--no-prompt', 'ablation: no soft prompt (teacher without it; nothing adapts in stage 2)')
  .option('--no-pairkd', 'ablation: no PairKD')
  .option('--no-listkd', 'ablation: no ListKD')
  .option('--no-disentangle', 'ablation: plain list-wise KL instead of the disentangled one')
  .option('--no-embkd', 'ablation: no EmbKD')
  .option('--no-progress', 'no progress bar (it is drawn only on a terminal anyway)')
  .addOption(backendOption())
  .action(async (o) => {
    // Features are loaded (and checked: NaN/Inf, row counts) whether or not a teacher is trained.
    let dataDir = o.data;
    if (o.interactions) {
      dataDir = join(o.repo, o.name, 'data-with-log');
      const a = mergeInteractionLog(o.data, o.interactions, dataDir);
      log.info({ dir: dataDir, interactions: a.interactions, logPosition: a.logPosition }, 'interaction log merged into the training data');
    }
    const data = loadData(dataDir, true);
    const info = await engine(o.backend);
    const loop = { lr: o.lr, batch: o.batch, epochs: o.epochs, seed: o.seed, evalEvery: o.evalEvery, patience: o.patience, ks: o.ks };
    const student: StudentConfig = { ...loop, dim: o.dim, layers: o.layers, reg: o.reg };
    const teacher: TeacherConfig = {
      ...loop,
      lr: o.teacherLr,
      dim: o.dim,
      layers: o.teacherLayers,
      reg: o.reg,
      dropout: o.teacherDropout,
      modalWeight: o.teacherModalWeight,
      modalMix: o.teacherModalMix,
      promptRate: o.promptRate,
      promptDim: o.promptDim,
      prompt: o.prompt,
    };
    const kd: KdConfig = {
      pairWeight: o.pairWeight,
      listWeight: o.listWeight,
      embWeight: o.embWeight,
      temperature: o.temperature,
      listSize: o.listSize,
      gamma: o.gamma,
      binaryWeight: o.binaryWeight,
      pair: o.pairkd,
      list: o.listkd,
      disentangle: o.disentangle,
      emb: o.embkd,
      adaptPrompt: o.prompt,
    };
    if (o.gamma < 1) throw new Error(`--gamma must be ≥ 1, got ${o.gamma}`);
    if (o.resume && !existsSync(join(o.repo, o.name, 'checkpoints'))) throw new Error(`--resume: no checkpoints under ${join(o.repo, o.name, 'checkpoints')}`);
    const report = await runPipeline({
      data,
      repo: o.repo,
      name: o.name,
      student,
      teacher,
      kd,
      stage: o.stage,
      studentOnly: o.studentOnly,
      resume: o.resume,
      backend: info,
      log,
      progress: o.progress && Boolean(process.stderr.isTTY),
    });
    process.stdout.write(`${JSON.stringify({ name: o.name, backend: info.backend, ...report })}\n`);
  });

program
  .command('eval')
  .description("Evaluate a student checkpoint (all-ranking Recall@K / NDCG@K; earlier splits' items masked)")
  .requiredOption('--name <name>', 'model name in the repository')
  .addOption(repoOption())
  .addOption(new Option('--split <split>', 'split to evaluate').choices(['val', 'test']).default('test'))
  .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)')
  .option('--ks <list>', 'cut-offs K', kList, STUDENT_DEFAULTS.ks)
  .option('--json', 'print the metrics as one JSON object', false)
  .addOption(backendOption())
  .action(async (o) => {
    await engine(o.backend);
    const m = evaluateStudent(studentCheckpointDir(o.repo, o.name), { dataDir: o.data, split: o.split, ks: o.ks });
    if (o.json) process.stdout.write(`${JSON.stringify(m)}\n`);
    else for (const [k, v] of Object.entries(m)) process.stdout.write(`${k.padEnd(10)} ${Number.isInteger(v) ? v : v.toFixed(4)}\n`);
  });

program
  .command('dump')
  .description('Write the final (propagated) user_embeddings.npy and item_embeddings.npy (float32; row r = id r)')
  .requiredOption('--name <name>', 'model name in the repository')
  .requiredOption('--out <dir>', 'output folder')
  .addOption(repoOption())
  .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)')
  .addOption(backendOption())
  .action(async (o) => {
    await engine(o.backend);
    const files = dumpStudent(studentCheckpointDir(o.repo, o.name), o.out, { dataDir: o.data });
    process.stdout.write(`${JSON.stringify(files)}\n`);
  });

program
  .command('export')
  .description('Export the student checkpoint as the next bundle version: embeddings, ids, seen items, popularity, model.onnx, items.hnsw, manifest.json')
  .requiredOption('--name <name>', 'model name')
  .addOption(repoOption())
  .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)')
  .option('--hnsw-m <n>', 'HNSW graph degree M', int('--hnsw-m', 2), HNSW_DEFAULTS.m)
  .option('--hnsw-ef-construction <n>', 'HNSW build-time ef', int('--hnsw-ef-construction'), HNSW_DEFAULTS.efConstruction)
  .option('--hnsw-ef <n>', 'query-time ef recorded in the manifest for the server', int('--hnsw-ef'), HNSW_DEFAULTS.efSearch)
  .addOption(backendOption())
  .action(async (o) => {
    await engine(o.backend);
    const input = bundleFromCheckpoint(o.repo, o.name, { dataDir: o.data });
    const r = exportBundle(input, {
      repo: o.repo,
      hnsw: { space: 'ip', m: o.hnswM, efConstruction: o.hnswEfConstruction, efSearch: o.hnswEf, seed: HNSW_DEFAULTS.seed },
      progress: Boolean(process.stderr.isTTY),
      log,
    });
    log.info({ name: o.name, version: r.version, dir: r.dir, mib: +(r.bytes / 2 ** 20).toFixed(1), seconds: +r.seconds.toFixed(1) }, 'exported');
    process.stdout.write(`${JSON.stringify({ name: o.name, version: r.version, dir: r.dir, bytes: r.bytes, seconds: +r.seconds.toFixed(2), hnswItemsPerSecond: Math.round(r.hnsw.itemsPerSecond) })}\n`);
  });

const models = program.command('models').description('Inspect the model repository: list versions, show a manifest, verify checksums');
models
  .command('list')
  .description('List models and their versions (newest last)')
  .option('--name <name>', 'only this model')
  .addOption(repoOption())
  .option('--json', 'print JSON')
  .action((o) => {
    const names = o.name ? [o.name] : listModels(o.repo);
    const rows = names.map((name: string) => ({
      name,
      versions: listVersions(o.repo, name).map((v) => {
        const m = readManifest(versionDir(o.repo, name, v));
        const bytes = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
        return { version: v, createdAt: m.createdAt, users: m.counts.users, items: m.counts.items, dim: m.dim, mib: +(bytes / 2 ** 20).toFixed(1) };
      }),
    }));
    if (o.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    for (const r of rows) {
      process.stdout.write(`${r.name}: ${r.versions.length ? '' : 'no exported versions'}\n`);
      for (const v of r.versions) process.stdout.write(`  v${v.version}  ${v.createdAt}  ${v.users} users  ${v.items} items  dim ${v.dim}  ${v.mib} MiB\n`);
    }
  });
const versionOption = () => new Option('--version <n>', 'bundle version (default: the newest)').argParser(int('--version'));
function pickVersion(repo: string, name: string, v?: number): number {
  const all = listVersions(repo, name);
  if (!all.length) throw new RepositoryError(`model ${name} has no exported versions in ${resolve(repo)}`);
  if (v !== undefined && !all.includes(v)) throw new RepositoryError(`model ${name} has no version ${v} (versions: ${all.join(', ')})`);
  return v ?? all[all.length - 1];
}
models
  .command('show')
  .description("Print a version's manifest")
  .requiredOption('--name <name>', 'model name')
  .addOption(versionOption())
  .addOption(repoOption())
  .action((o) => {
    const m = readManifest(versionDir(o.repo, o.name, pickVersion(o.repo, o.name, o.version)));
    process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
  });
models
  .command('verify')
  .description("Check every file of a version (default: all versions) against the manifest's sizes and sha256; exit 1 on any mismatch")
  .requiredOption('--name <name>', 'model name')
  .addOption(versionOption())
  .addOption(repoOption())
  .action(async (o) => {
    const versions = o.version !== undefined ? [pickVersion(o.repo, o.name, o.version)] : listVersions(o.repo, o.name);
    if (!versions.length) throw new RepositoryError(`model ${o.name} has no exported versions in ${resolve(o.repo)}`);
    let bad = 0;
    for (const v of versions) {
      const r = await verifyBundle(versionDir(o.repo, o.name, v));
      process.stdout.write(`${o.name} v${v}: ${r.ok ? 'ok' : 'FAILED'}\n`);
      for (const p of r.problems) process.stdout.write(`  ${p}\n`);
      if (!r.ok) bad++;
    }
    if (bad) process.exitCode = 1;
  });

program
  .command('serve')
  .description('Serve top-K recommendations over HTTP from the newest valid bundle of a model; hot-reloads new versions')
  .addOption(new Option('--name <name>', 'model name').env('PROMPTMM_MODEL').makeOptionMandatory())
  .addOption(repoOption())
  .addOption(new Option('--host <host>', 'interface to listen on').default('127.0.0.1').env('PROMPTMM_HOST'))
  .addOption(new Option('--port <n>', 'TCP port (0 = any free port)').default(8080).env('PROMPTMM_PORT').argParser(int('--port', 0)))
  .addOption(new Option('--retrieval <mode>', 'default retrieval: ann (HNSW) or exact (ONNX)').choices(['ann', 'exact']).default('ann').env('PROMPTMM_RETRIEVAL'))
  .addOption(new Option('--ef <n>', "HNSW query ef (default: the bundle manifest's)").env('PROMPTMM_HNSW_EF').argParser(int('--ef')))
  .addOption(new Option('--providers <list>', 'ONNX Runtime execution providers, tried in order').default('cuda,cpu').env('PROMPTMM_ONNX_PROVIDERS'))
  .addOption(new Option('--poll-seconds <n>', 'also poll the repository for new versions every n seconds (0 = watch only)').default(30).env('PROMPTMM_POLL_SECONDS').argParser(int('--poll-seconds', 0)))
  .addOption(new Option('--cache-users <n>', 'users whose recommendation lists are cached (LRU, per version; 0 = off)').default(100000).env('PROMPTMM_CACHE_USERS').argParser(int('--cache-users', 0)))
  .addOption(new Option('--log-dir <dir>', 'durable interaction log (default <repo>/<name>/interactions)').env('PROMPTMM_LOG_DIR'))
  .addOption(new Option('--online-steps <n>', 'BPR steps on a user vector per new interaction').default(5).env('PROMPTMM_ONLINE_STEPS').argParser(int('--online-steps', 0)))
  .addOption(new Option('--round-every <n>', 'background fine-tuning round every n interactions (0 = off)').default(20000).env('PROMPTMM_ROUND_EVERY').argParser(int('--round-every', 0)))
  .addOption(new Option('--round-seconds <n>', 'or n seconds after the first new interaction (0 = off)').default(60).env('PROMPTMM_ROUND_SECONDS').argParser(int('--round-seconds', 0)))
  .addOption(new Option('--round-lr <x>', 'learning rate of a fine-tuning round').default(0.2).env('PROMPTMM_ROUND_LR').argParser(positive('--round-lr')))
  .addOption(new Option('--round-epochs <n>', 'passes over the recent interactions in a round').default(10).env('PROMPTMM_ROUND_EPOCHS').argParser(int('--round-epochs')))
  .addOption(new Option('--round-replay <n>', 'old (user, item) pairs replayed per recent one in a round').default(1).env('PROMPTMM_ROUND_REPLAY').argParser(int('--round-replay', 0)))
  .addHelpText('after', '\nEnvironment: PROMPTMM_TOKEN turns on the admin and write endpoints (POST /interactions, POST /admin/reload, POST /admin/finetune) behind "Authorization: Bearer <token>".')
  .action(async (o) => {
    const providers = String(o.providers).split(',').map((p) => p.trim()).filter(Boolean);
    if (!providers.length || providers.some((p) => !['cuda', 'cpu'].includes(p))) throw new InvalidArgumentError(`--providers must list cuda and/or cpu, got "${o.providers}"`);
    const { serve } = await import('../server/server.js'); // fastify and onnxruntime load only for this command
    await serve({ name: o.name, repo: o.repo, host: o.host, port: o.port, retrieval: o.retrieval, ef: o.ef, providers, pollSeconds: o.pollSeconds, token: process.env.PROMPTMM_TOKEN || undefined, cacheUsers: o.cacheUsers, logDir: o.logDir, online: { steps: o.onlineSteps, roundEvery: o.roundEvery, roundSeconds: o.roundSeconds, roundLr: o.roundLr, roundEpochs: o.roundEpochs, replay: o.roundReplay } }, log);
  });

program
  .command('generate')
  .description('Write a synthetic multimodal dataset in the MMRec layout (latent factors; features carry part of the item factor)')
  .requiredOption('--out <dir>', 'output folder (created; must not already hold a dataset)')
  .option('--users <n>', 'users', int('--users'), 600)
  .option('--items <n>', 'items', int('--items'), 400)
  .option('--interactions-per-user <n>', 'mean interactions per user', int('--interactions-per-user'), 20)
  .option('--seed <n>', 'random seed', int('--seed', 0), 1)
  .addOption(new Option('--dtype <t>', 'feature dtype').choices(['float16', 'float32', 'float64']).default('float32'))
  .action((o) => {
    const r = generateSynthetic({ dir: o.out, users: o.users, items: o.items, interactionsPerUser: o.interactionsPerUser, seed: o.seed, dtype: o.dtype });
    process.stdout.write(`${JSON.stringify(r)}\n`);
  });

program
  .command('demo')
  .description('The main job on embedded defaults: generate a synthetic multimodal dataset, train the teacher and the distilled student, evaluate, export a servable bundle')
  .addOption(repoOption())
  .option('--name <name>', 'model name', 'demo')
  .option('--epochs <n>', 'maximum epochs of each stage', int('--epochs'), 40)
  .addOption(backendOption())
  .action(async (o) => {
    const dataDir = resolve(o.repo, o.name, 'data');
    if (!existsSync(join(dataDir, 'synthetic.inter'))) {
      mkdirSync(dataDir, { recursive: true });
      generateSynthetic({ dir: dataDir, users: 1500, items: 1000, interactionsPerUser: 20, seed: 1 });
      log.info({ dir: dataDir }, 'generated synthetic dataset');
    }
    const data = loadData(dataDir, true);
    const info = await engine(o.backend);
    // A small catalog trains well with larger steps than Tiktok's defaults.
    const loop = { lr: 5e-3, batch: 1024, epochs: o.epochs, seed: STUDENT_DEFAULTS.seed, evalEvery: 5, patience: 3, ks: STUDENT_DEFAULTS.ks };
    const report = await runPipeline({
      data,
      repo: o.repo,
      name: o.name,
      student: { ...STUDENT_DEFAULTS, ...loop },
      teacher: { ...TEACHER_DEFAULTS, ...loop },
      kd: KD_DEFAULTS,
      stage: 'all',
      studentOnly: false,
      resume: false,
      backend: info,
      log,
      progress: Boolean(process.stderr.isTTY),
    });
    const exported = exportBundle(bundleFromCheckpoint(o.repo, o.name), {
      repo: o.repo,
      hnsw: { space: 'ip', ...HNSW_DEFAULTS },
      progress: Boolean(process.stderr.isTTY),
      log,
    });
    const pop = evaluatePopularity(data, { split: 'test', ks: [20] });
    const line = (label: string, m?: Record<string, number>) => (m ? `  ${label.padEnd(18)} recall@20 ${m['recall@20'].toFixed(4)}  ndcg@20 ${m['ndcg@20'].toFixed(4)}\n` : '');
    process.stdout.write(
      `demo: ${datasetSummary(data)}\n` +
        `backend ${info.backend}; teacher ${report.teacher?.secondsPerEpoch.toFixed(2)} s/epoch, student ${report.student?.secondsPerEpoch.toFixed(2)} s/epoch; ` +
        `parameters teacher ${report.parameters.teacher} / student ${report.parameters.student}; ${report.wallSeconds.toFixed(0)} s in all\n` +
        `test split:\n` +
        line('teacher', report.teacher?.test) +
        line('distilled student', report.student?.test) +
        line('most popular', pop) +
        `checkpoints and training curves (curve.svg): ${join(o.repo, o.name, 'checkpoints')}/\n` +
        `exported bundle v${exported.version}: ${exported.dir}\n` +
        `serve it: npx promptmm serve --name ${o.name}   then: curl 'http://127.0.0.1:8080/recommend?user=0&k=10'\n`,
    );
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`promptmm: error: ${msg}\n`);
  if (process.env.PROMPTMM_DEBUG === '1' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
}
