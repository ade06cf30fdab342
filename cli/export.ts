/** `promptmm export`: the student checkpoint as the next servable bundle version in the model repository. */
import type { Command } from 'commander';
import { exportBundle } from '../export/exporter.js';
import { bundleFromCheckpoint } from '../export/from-checkpoint.js';
import { HNSW_DEFAULTS } from '../repository/hnsw-index.js';
import { addSettings, engine, log, onTerminal, printJson, settingOption, settingValues } from './options.js';

const KEYS = ['repo', 'hnswM', 'hnswEfConstruction', 'hnswEf', 'backend'] as const;

export function register(program: Command): void {
  const cmd = program
    .command('export')
    .description('Export the student checkpoint as the next bundle version: embeddings, ids, seen items, popularity, model.onnx, items.hnsw, manifest.json; for a sasrec checkpoint also sequence.onnx and each user\'s last max-len items')
    .requiredOption('--name <name>', 'model name')
    .addOption(settingOption('repo'))
    .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)');
  addSettings(cmd, ['hnswM', 'hnswEfConstruction', 'hnswEf', 'backend']);
  cmd.action(async (o) => {
    const v = settingValues(o, KEYS);
    await engine(v.backend);
    const input = bundleFromCheckpoint(v.repo, o.name, { dataDir: o.data, onItemEncoder: (what) => log.warn(what) });
    const r = exportBundle(input, {
      repo: v.repo,
      hnsw: { space: 'ip', m: v.hnswM, efConstruction: v.hnswEfConstruction, efSearch: v.hnswEf, seed: HNSW_DEFAULTS.seed },
      progress: onTerminal(),
      log,
    });
    log.info({ name: o.name, version: r.version, dir: r.dir, mib: +(r.bytes / 2 ** 20).toFixed(1), seconds: +r.seconds.toFixed(1) }, 'exported');
    printJson({ name: o.name, version: r.version, dir: r.dir, bytes: r.bytes, seconds: +r.seconds.toFixed(2), hnswItemsPerSecond: Math.round(r.hnsw.itemsPerSecond) });
  });
}
