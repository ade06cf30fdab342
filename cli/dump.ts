/** `promptmm dump`: a student checkpoint's final user and item embeddings (a sequential student: its users' encoded inputs of a split) as .npy files. */
import type { Command } from 'commander';
import { studentCheckpointDir } from '../trainer/stages/student.js';
import { dumpStudent } from '../trainer/stages/student-io.js';
import { engine, printJson, settingOption, settingValues } from './options.js';

export function register(program: Command): void {
  program
    .command('dump')
    .description(
      'Write the final (propagated) user_embeddings.npy and item_embeddings.npy (float32; row r = id r); ' +
        "for a sequential student (sasrec) the user rows encode the --split's input (val: train items, test: train + validation items)",
    )
    .requiredOption('--name <name>', 'model name in the repository')
    .requiredOption('--out <dir>', 'output folder')
    .addOption(settingOption('repo'))
    .addOption(settingOption('split'))
    .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)')
    .option('--branch <name>', 'a checkpoint trained with --seq-kd odmt: id (default, the served student), a modality\'s branch, or ensemble (the mean of the branches\' scores: vectors of dim × branches); of a student trained with --odmt-student distilled, its teacher\'s (checkpoints/odmt-teacher); reads the feature files')
    .addOption(settingOption('backend'))
    .action(async (o) => {
      const v = settingValues(o, ['repo', 'split', 'backend']);
      await engine(v.backend);
      printJson(dumpStudent(studentCheckpointDir(v.repo, o.name), o.out, { dataDir: o.data, split: v.split, branch: o.branch }));
    });
}
