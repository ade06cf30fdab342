#!/usr/bin/env node
// Rewrites docs/configuration.md between <!-- defaults:begin --> and <!-- defaults:end --> with the table of
// settings rendered from core/defaults.ts (built: run through `npm run docs:defaults`).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { settingsTable, withSettingsTable, TABLE_BEGIN, TABLE_END } from '../dist/core/settings-table.js';

const file = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
const readme = readFileSync(file, 'utf8');
const next = withSettingsTable(readme, settingsTable());
if (next === null) {
  console.log(`docs/configuration.md has no ${TABLE_BEGIN} … ${TABLE_END} pair: nothing to rewrite`);
} else if (next === readme) {
  console.log('docs/configuration.md: the settings table is up to date');
} else {
  writeFileSync(file, next);
  console.log('docs/configuration.md: settings table rewritten from core/defaults.ts');
}
