#!/usr/bin/env node
// Prints the folder → folder imports of the sources and checks the layering: every import
// goes to the same folder or one lower in LAYERS, and there are no import cycles between files.
// Exit 1 on a violation. `npm run check:imports` (also run by the test suite).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';

// Bottom first. A folder may import from itself and from any folder before it.
const LAYERS = [
  'core', 'repository', 'data',
  'trainer/engine', 'trainer', 'trainer/models', 'trainer/stages',
  'export',
  'server/common', 'server/retrieval', 'server/serving', 'server/online', 'server/routes', 'server',
  'loadtest', 'cli', 'test-support', 'bench', 'test',
];
// server/ is served without the training stack: it must not reach these at all.
const FORBIDDEN = { server: ['trainer', 'data', 'export'] };

const args = process.argv.slice(2);
const quiet = args.includes('--quiet');
const root = args.find((a) => !a.startsWith('--')) ?? process.cwd();
const files = [];
(function walk(dir) {
  for (const name of readdirSync(join(root, dir))) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const rel = dir ? `${dir}/${name}` : name;
    if (statSync(join(root, rel)).isDirectory()) walk(rel);
    else if (rel.endsWith('.ts')) files.push(rel);
  }
})('');

/** The deepest LAYERS entry that contains the file. */
function layerOf(file) {
  let best = null;
  for (const l of LAYERS) if (file.startsWith(l + '/') && (!best || l.length > best.length)) best = l;
  return best;
}

const edges = new Map(); // "a → b" -> count
const fileDeps = new Map();
const problems = [];
for (const f of files) {
  const src = readFileSync(join(root, f), 'utf8');
  const deps = [];
  for (const m of src.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'|new URL\(\s*'(\.{1,2}\/[^']+)'/g)) {
    const spec = m[1] ?? m[2];
    const target = posix.normalize(posix.join(dirname(f), spec)).replace(/\.js$/, '.ts');
    if (!target.endsWith('.ts')) continue;
    deps.push(target);
    const a = layerOf(f), b = layerOf(target);
    if (!a || !b) { problems.push(`${f}: import of ${target} outside the known folders`); continue; }
    if (a !== b) edges.set(`${a} → ${b}`, (edges.get(`${a} → ${b}`) ?? 0) + 1);
    if (LAYERS.indexOf(b) > LAYERS.indexOf(a)) problems.push(`upward: ${f} imports ${target} (${a} → ${b})`);
    for (const [top, banned] of Object.entries(FORBIDDEN)) {
      if ((a === top || a.startsWith(top + '/')) && banned.some((x) => b === x || b.startsWith(x + '/')))
        problems.push(`forbidden: ${f} imports ${target} (${top}/ must not import ${b}/)`);
    }
  }
  fileDeps.set(f, deps);
}

// Cycles between files (Tarjan's strongly connected components).
let index = 0;
const idx = new Map(), low = new Map(), stack = [], on = new Set();
function strong(v) {
  idx.set(v, index); low.set(v, index); index++; stack.push(v); on.add(v);
  for (const w of fileDeps.get(v) ?? []) {
    if (!fileDeps.has(w)) continue;
    if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v), low.get(w))); }
    else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
    if (comp.length > 1) problems.push(`cycle: ${comp.reverse().join(' → ')}`);
  }
}
for (const f of fileDeps.keys()) if (!idx.has(f)) strong(f);

const rows = [...edges].sort(([a], [b]) => a.localeCompare(b));
if (!quiet) for (const [e, n] of rows) console.log(`${e.padEnd(44)} ${n}`);
console.log(`${files.length} files, ${rows.length} folder → folder edges, ${problems.length} problems`);
for (const p of problems) console.log(`  ${p}`);
process.exit(problems.length ? 1 : 0);
