/** The table of settings in docs/configuration.md, rendered from core/defaults.ts, and its place between the markers. */
import { SECTIONS, SETTINGS, type Section, type Setting } from './defaults.js';

export const TABLE_BEGIN = '<!-- defaults:begin -->';
export const TABLE_END = '<!-- defaults:end -->';

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (s: string): string => (s ? `\`${s}\`` : '');

function defaultCell(s: Setting<unknown>): string {
  if (s.default !== undefined) return code(s.show(s.default));
  if (s.required) return 'required';
  return s.defaultText ? cell(s.defaultText) : '';
}

/** One markdown table per section: setting (library name), flag, environment variable, default, values, description. */
export function settingsTable(): string {
  const all = Object.values(SETTINGS) as Setting<unknown>[];
  const parts: string[] = ['<!-- generated from core/defaults.ts by `npm run docs:defaults`; edit there -->'];
  for (const [section, title] of Object.entries(SECTIONS) as [Section, string][]) {
    const rows = all.filter((s) => s.section === section);
    if (!rows.length) continue;
    parts.push('', `**${title}**`, '', '| Setting | Flag | Environment | Default | Values | Description |', '|---|---|---|---|---|---|');
    for (const s of rows) {
      parts.push(`| ${code(s.key)} | ${s.flag ? code(s.flag) : ''} | ${s.env ? code(s.env) : ''} | ${defaultCell(s)} | ${cell(s.values)} | ${cell(s.description)} |`);
    }
  }
  return parts.join('\n');
}

/** The document with the table between the markers; null when it lacks them (in order, once each). */
export function withSettingsTable(readme: string, table = settingsTable()): string | null {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  if (begin < 0 || end < begin || readme.indexOf(TABLE_BEGIN, begin + 1) >= 0 || readme.indexOf(TABLE_END, end + 1) >= 0) return null;
  return `${readme.slice(0, begin + TABLE_BEGIN.length)}\n${table}\n${readme.slice(end)}`;
}

/** The text between the markers, or null without them. */
export function currentSettingsTable(readme: string): string | null {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  return begin < 0 || end < begin ? null : readme.slice(begin + TABLE_BEGIN.length, end).trim();
}
