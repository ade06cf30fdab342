/** `promptmm demo`: generate a synthetic dataset, train teacher and distilled student, evaluate, export — on embedded defaults. */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULTS } from '../core/defaults.js';
import { datasetSummary } from '../data/dataset.js';
import { generateSynthetic } from '../data/synthetic.js';
import { STUDENT_DEFAULTS } from '../trainer/stages/student.js';
import { TEACHER_DEFAULTS } from '../trainer/stages/teacher.js';
import { KD_DEFAULTS } from '../trainer/stages/kd.js';
import { runPipeline } from '../trainer/stages/pipeline.js';
import { ITEM_ENCODER_DEFAULTS } from '../trainer/stages/item-encoder.js';
import { evaluatePopularity } from '../trainer/eval.js';
import { exportBundle } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { addSettings, engine, loadData, log, onTerminal, settingValues } from './options.js';

const KEYS = ['repo', 'demoName', 'demoEpochs', 'backend'] as const;

export function register(program: Command): void {
  const cmd = program
    .command('demo')
    .description('The main job on embedded defaults: generate a synthetic multimodal dataset, train the teacher and the distilled student, evaluate, export a servable bundle');
  addSettings(cmd, KEYS).action(async (o) => {
    const { repo, demoName: name, demoEpochs: epochs, backend } = settingValues(o, KEYS);
    const dataDir = resolve(repo, name, 'data');
    if (!existsSync(join(dataDir, 'synthetic.inter'))) {
      mkdirSync(dataDir, { recursive: true });
      generateSynthetic({ dir: dataDir, users: DEFAULTS.demoUsers, items: DEFAULTS.demoItems, interactionsPerUser: DEFAULTS.demoInteractionsPerUser, seed: DEFAULTS.demoDataSeed });
      log.info({ dir: dataDir }, 'generated synthetic dataset');
    }
    const data = loadData(dataDir);
    const info = await engine(backend);
    const loop = { lr: DEFAULTS.demoLr, batch: DEFAULTS.demoBatch, epochs, evalEvery: DEFAULTS.demoEvalEvery, patience: DEFAULTS.demoPatience };
    const report = await runPipeline({
      data,
      repo,
      name,
      student: { ...STUDENT_DEFAULTS, ...loop },
      teacher: { ...TEACHER_DEFAULTS, ...loop },
      kd: KD_DEFAULTS,
      itemEncoder: ITEM_ENCODER_DEFAULTS,
      stage: 'all',
      studentOnly: false,
      resume: false,
      backend: info,
      log,
      progress: onTerminal(),
    });
    const exported = exportBundle(bundleFromCheckpoint(repo, name), { repo, hnsw: { space: 'ip', ...HNSW_DEFAULTS }, progress: onTerminal(), log });
    const pop = evaluatePopularity(data, { split: 'test', ks: [20] });
    const line = (label: string, m?: Record<string, number>) => (m ? `  ${label.padEnd(21)} recall@20 ${m['recall@20'].toFixed(4)}  ndcg@20 ${m['ndcg@20'].toFixed(4)}\n` : '');
    process.stdout.write(
      `demo: ${datasetSummary(data)}\n` +
        `backend ${info.backend}; teacher ${report.teacher?.secondsPerEpoch.toFixed(2)} s/epoch, student ${report.student?.secondsPerEpoch.toFixed(2)} s/epoch; ` +
        `parameters teacher ${report.parameters.teacher} / student ${report.parameters.student}; ${report.wallSeconds.toFixed(0)} s in all\n` +
        `test split:\n` +
        line('teacher', report.teacher?.test) +
        // (the guards may have kept the plain student: say which one is exported)
        line(report.mode === 'kd' ? 'distilled student' : 'plain student', report.student?.test) +
        line('distilled, set aside', report.kdStudent?.test) +
        line('most popular', pop) +
        `checkpoints and training curves (curve.svg): ${join(repo, name, 'checkpoints')}/\n` +
        `exported bundle v${exported.version}: ${exported.dir}\n` +
        `serve it: npx promptmm serve --name ${name}   then: curl 'http://${DEFAULTS.host}:${DEFAULTS.port}/recommend?user=0&k=10'\n`,
    );
  });
}
