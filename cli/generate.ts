/** `promptmm generate`: a synthetic multimodal dataset in the MMRec layout. */
import type { Command } from 'commander';
import { generateSynthetic } from '../data/synthetic.js';
import { addSettings, printJson, settingValues } from './options.js';

const KEYS = ['users', 'items', 'interactionsPerUser', 'generateSeed', 'dtype'] as const;

export function register(program: Command): void {
  const cmd = program
    .command('generate')
    .description('Write a synthetic multimodal dataset in the MMRec layout (latent factors; features carry part of the item factor)')
    .requiredOption('--out <dir>', 'output folder (created; must not already hold a dataset)');
  addSettings(cmd, KEYS).action((o) => {
    const v = settingValues(o, KEYS);
    printJson(generateSynthetic({ dir: o.out, users: v.users, items: v.items, interactionsPerUser: v.interactionsPerUser, seed: v.generateSeed, dtype: v.dtype }));
  });
}
