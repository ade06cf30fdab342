#!/usr/bin/env node
/** The `promptmm` command line: checks the Node.js version, registers one module per command (cli/*.ts) and runs. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';

/** Whether version `have` (a.b.c) is below `need`. */
function olderThan(have: string, need: string): boolean {
  const a = have.split('.').map(Number);
  const b = need.split('.').map(Number);
  for (let i = 0; i < b.length; i++) if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) < b[i];
  return false;
}

// package.json's engines field is the one statement of the minimum. The commands are imported
// after this check: on an older Node their imports fail to link (zlib.crc32 came in 20.15.0).
const { engines } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
const minimum = engines.node.replace(/^>=\s*/, '');
if (olderThan(process.versions.node, minimum)) {
  process.stderr.write(`promptmm: error: Node.js ${minimum} or newer is needed, this is ${process.versions.node}\n`);
  process.exit(1);
}

const { fromEnv } = await import('../core/defaults.js');

try {
  // Registration order is the order of `promptmm --help`.
  const commands = [
    await import('./train.js'),
    await import('./eval.js'),
    await import('./dump.js'),
    await import('./export.js'),
    await import('./models.js'),
    await import('./serve.js'),
    await import('./finetune.js'),
    await import('./generate.js'),
    await import('./demo.js'),
  ];
  const program = new Command('promptmm')
    .description('Multimodal recommender: train, evaluate, export and serve a LightGCN student distilled from a multimodal teacher (PromptMM, WWW 2024).')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (s, write) => write(s) });
  for (const c of commands) c.register(program);
  await program.parseAsync(process.argv);
} catch (err) {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`promptmm: error: ${msg}\n`);
  if (debug() && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
}

/** PROMPTMM_DEBUG, read so that a bad value cannot hide the error being reported. */
function debug(): boolean {
  try {
    return fromEnv('debug');
  } catch {
    return false;
  }
}
