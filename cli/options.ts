/** What the commands share: options generated from core/defaults.ts, the logger, engine start-up and dataset loading. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { SETTINGS, SettingError, type Setting, type SettingKey, type SettingValue } from '../core/defaults.js';
import { createLogger } from '../core/log.js';
import { initEngine, type BackendChoice } from '../trainer/engine/backend.js';
import { loadDataset, datasetSummary, type Dataset, type LoadOptions } from '../data/dataset.js';

export const log = createLogger();

/** The commander option of a setting: its flag, description, default, choices, env var and validation. */
export function settingOption(key: SettingKey): Option {
  const s: Setting<unknown> = SETTINGS[key];
  if (!s.flag) throw new Error(`setting ${key} has no CLI flag`);
  const description = s.default === undefined && s.defaultText ? `${s.description} (default: ${s.defaultText})` : s.description;
  const o = new Option(s.flag, description);
  if (s.choices) o.choices(s.choices);
  else if (!s.boolean) {
    o.argParser((raw: string) => {
      try {
        return s.parse(raw);
      } catch (err) {
        // commander prints an InvalidArgumentError as one line after naming the option
        if (err instanceof SettingError) throw new InvalidArgumentError(err.message);
        throw err;
      }
    });
  }
  // a --no- switch is on unless given; commander implies that default (and shows none)
  if (s.default !== undefined && !o.negate) o.default(s.default, s.helpDefault);
  if (s.env) o.env(s.env);
  if (s.required) o.makeOptionMandatory();
  return o;
}

export function addSettings(cmd: Command, keys: readonly SettingKey[]): Command {
  for (const k of keys) cmd.addOption(settingOption(k));
  return cmd;
}

/** The parsed values of the given settings, by setting key (commander keys them by flag). */
export function settingValues<K extends SettingKey>(opts: Record<string, unknown>, keys: readonly K[]): { [P in K]: SettingValue<P> } {
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = opts[new Option(SETTINGS[k].flag!).attributeName()];
  return out as { [P in K]: SettingValue<P> };
}

export async function engine(choice: string) {
  const info = await initEngine(choice as BackendChoice);
  log.info({ backend: info.backend, choice: info.choice, skipped: info.skipped }, `tfjs backend: ${info.backend}`);
  return info;
}

export function loadData(dir: string, opts: LoadOptions = {}): Dataset {
  const data = loadDataset(dir, opts);
  log.info({ dataset: data.name, dir: data.dir }, datasetSummary(data));
  return data;
}

export function printJson(value: unknown, indent?: number): void {
  process.stdout.write(`${JSON.stringify(value, null, indent)}\n`);
}

/** A progress bar only where someone watches: stderr is a terminal. */
export const onTerminal = (): boolean => Boolean(process.stderr.isTTY);
