/**
 * Flags of the benchmark and load-test scripts (`node dist/bench/….js`): node's parseArgs, plus
 * `--help` / `-h`, which prints the script's own header comment (its usage lines and what it
 * measures: written once, where the next reader looks first), and a bad flag or value, which
 * prints one line naming it and the way to the help instead of a stack trace (exit status 2).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The leading block comment of a source file, without its comment markers. */
export function headerComment(source: string): string {
  const m = /^(?:#![^\n]*\n)?\s*\/\*\*?([\s\S]*?)\*\//.exec(source);
  if (!m) return '';
  return m[1]
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}

/**
 * parseArgs over process.argv for the script at `moduleUrl` (pass `import.meta.url`). `--help`
 * prints the script's header comment and its flags and exits 0 (unless the script declares a
 * `help` flag of its own); a flag it does not know, or a missing value, exits 2 with one line.
 */
export function scriptArgs<T extends { options: NonNullable<ParseArgsConfig['options']> }>(moduleUrl: string, config: T, argv: string[] = process.argv.slice(2)) {
  const name = basename(fileURLToPath(moduleUrl));
  const options = config.options;
  if (!('help' in options) && (argv.includes('--help') || argv.includes('-h'))) {
    let text = '';
    try {
      text = headerComment(readFileSync(fileURLToPath(moduleUrl), 'utf8'));
    } catch {
      // a script read from elsewhere (bundled): the flags alone
    }
    const flags = Object.entries(options)
      .map(([flag, o]) => `  --${flag}${o.type === 'string' ? ' VALUE' : ''}${o.default !== undefined && o.default !== false ? ` (default ${JSON.stringify(o.default)})` : ''}`)
      .join('\n');
    process.stdout.write(`${text || name}\n\nflags:\n${flags}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ ...config, args: argv });
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message.split('\n')[0]} (--help lists the flags)\n`);
    process.exit(2);
  }
}
