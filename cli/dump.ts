/** `promptmm dump`: a student checkpoint's final user and item embeddings as .npy files. */
import type { Command } from 'commander';
import { studentCheckpointDir } from '../trainer/stages/student.js';
import { dumpStudent } from '../trainer/stages/student-io.js';
import { engine, printJson, settingOption, settingValues } from './options.js';

export function register(program: Command): void {
  program
    .command('dump')
    .description('Write the final (propagated) user_embeddings.npy and item_embeddings.npy (float32; row r = id r)')
    .requiredOption('--name <name>', 'model name in the repository')
    .requiredOption('--out <dir>', 'output folder')
    .addOption(settingOption('repo'))
    .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)')
    .addOption(settingOption('backend'))
    .action(async (o) => {
      const v = settingValues(o, ['repo', 'backend']);
      await engine(v.backend);
      printJson(dumpStudent(studentCheckpointDir(v.repo, o.name), o.out, { dataDir: o.data }));
    });
}
