/** `promptmm eval`: all-ranking Recall@K / NDCG@K of a student checkpoint on the validation or test split. */
import type { Command } from 'commander';
import { studentCheckpointDir } from '../trainer/stages/student.js';
import { evaluateStudent } from '../trainer/stages/student-io.js';
import { addSettings, engine, printJson, settingOption, settingValues } from './options.js';

export function register(program: Command): void {
  const cmd = program
    .command('eval')
    .description("Evaluate a student checkpoint (all-ranking Recall@K / NDCG@K; earlier splits' items masked; a sequential student encodes each user's earlier splits in time order)")
    .requiredOption('--name <name>', 'model name in the repository');
  addSettings(cmd, ['repo', 'split']);
  cmd
    .option('--data <dir>', 'dataset folder (default: the one the checkpoint was trained on)')
    .addOption(settingOption('ks'))
    .option('--json', 'print the metrics as one JSON object', false)
    .addOption(settingOption('backend'))
    .action(async (o) => {
      const v = settingValues(o, ['repo', 'split', 'ks', 'backend']);
      await engine(v.backend);
      // --ks not given: the model kind's default cut-offs (sasrec: 10,20,50)
      const ks = cmd.getOptionValueSource('ks') === 'default' ? undefined : v.ks;
      const m = evaluateStudent(studentCheckpointDir(v.repo, o.name), { dataDir: o.data, split: v.split, ks });
      if (o.json) printJson(m);
      else for (const [k, x] of Object.entries(m)) process.stdout.write(`${k.padEnd(10)} ${Number.isInteger(x) ? x : x.toFixed(4)}\n`);
    });
}
