/** `promptmm models list|show|verify`: inspect the model repository's exported versions. */
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { listModels, listVersions, readManifest, RepositoryError, verifyBundle, versionDir } from '../repository/versions.js';
import { printJson, settingOption, settingValues } from './options.js';

const versionOption = () =>
  new Option('--version <n>', 'bundle version (default: the newest)').argParser((raw: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--version must be an integer ≥ 1, got "${raw}"`);
    return n;
  });

function pickVersion(repo: string, name: string, v?: number): number {
  const all = listVersions(repo, name);
  if (!all.length) throw new RepositoryError(`model ${name} has no exported versions in ${resolve(repo)}`);
  if (v !== undefined && !all.includes(v)) throw new RepositoryError(`model ${name} has no version ${v} (versions: ${all.join(', ')})`);
  return v ?? all[all.length - 1];
}

export function register(program: Command): void {
  const models = program.command('models').description('Inspect the model repository: list versions, show a manifest, verify checksums');
  models
    .command('list')
    .description('List models and their versions (newest last)')
    .option('--name <name>', 'only this model')
    .addOption(settingOption('repo'))
    .option('--json', 'print JSON')
    .action((o) => {
      const { repo } = settingValues(o, ['repo']);
      const names: string[] = o.name ? [o.name] : listModels(repo);
      const rows = names.map((name) => ({
        name,
        versions: listVersions(repo, name).map((v) => {
          const m = readManifest(versionDir(repo, name, v));
          const bytes = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
          return { version: v, createdAt: m.createdAt, users: m.counts.users, items: m.counts.items, dim: m.dim, mib: +(bytes / 2 ** 20).toFixed(1) };
        }),
      }));
      if (o.json) return printJson(rows, 2);
      for (const r of rows) {
        process.stdout.write(`${r.name}: ${r.versions.length ? '' : 'no exported versions'}\n`);
        for (const v of r.versions) process.stdout.write(`  v${v.version}  ${v.createdAt}  ${v.users} users  ${v.items} items  dim ${v.dim}  ${v.mib} MiB\n`);
      }
    });
  models
    .command('show')
    .description("Print a version's manifest")
    .requiredOption('--name <name>', 'model name')
    .addOption(versionOption())
    .addOption(settingOption('repo'))
    .action((o) => {
      const { repo } = settingValues(o, ['repo']);
      printJson(readManifest(versionDir(repo, o.name, pickVersion(repo, o.name, o.version))), 2);
    });
  models
    .command('verify')
    .description("Check every file of a version (default: all versions) against the manifest's sizes and sha256; exit 1 on any mismatch")
    .requiredOption('--name <name>', 'model name')
    .addOption(versionOption())
    .addOption(settingOption('repo'))
    .action(async (o) => {
      const { repo } = settingValues(o, ['repo']);
      const versions = o.version !== undefined ? [pickVersion(repo, o.name, o.version)] : listVersions(repo, o.name);
      if (!versions.length) throw new RepositoryError(`model ${o.name} has no exported versions in ${resolve(repo)}`);
      let bad = 0;
      for (const v of versions) {
        const r = await verifyBundle(versionDir(repo, o.name, v));
        process.stdout.write(`${o.name} v${v}: ${r.ok ? 'ok' : 'FAILED'}\n`);
        for (const p of r.problems) process.stdout.write(`  ${p}\n`);
        if (!r.ok) bad++;
      }
      if (bad) process.exitCode = 1;
    });
}
