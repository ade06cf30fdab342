/**
 * Reading a V8 .cpuprofile (node --cpu-prof) for bench:serve-profile: the samples of a time
 * window, each charged to one cost category of a request (HTTP stack, validation, caches, HNSW
 * search, its filter callback, re-ranking, …), the folded stacks, and an SVG flame graph.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  /** µs, on the monotonic clock (the same as process.hrtime's on Linux) */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A frame's short name: function and file (the last two path parts), as the flame graph labels it. */
export function frameName(f: CallFrame): string {
  const file = f.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/');
  return file ? `${f.functionName || '(anonymous)'} ${file}` : f.functionName || '(anonymous)';
}

interface Rule {
  category: string;
  /** 'leaf': only the sampled frame; 'stack': any frame from the root down to it */
  scope: 'leaf' | 'stack';
  test: (f: CallFrame) => boolean;
}

const inFile = (f: CallFrame, re: RegExp) => re.test(f.url);
const named = (f: CallFrame, ...names: string[]) => names.includes(f.functionName);

/**
 * The categories of a request's cost, first match wins. hnswlib's searchKnn is native code: its
 * time is the self time of the JS frame that calls it (retrieval/ann.js), while the filter it
 * calls back per visited label is a JS frame of its own (unseen-search.js's `allowed`). With
 * search threads (search-threads.ts) the search runs on a worker: the event loop's part is the
 * messages to it and back.
 */
export const RULES: Rule[] = [
  { category: 'idle', scope: 'leaf', test: (f) => f.functionName === '(idle)' },
  { category: 'garbage collection', scope: 'leaf', test: (f) => f.functionName === '(garbage collector)' },
  { category: 'V8 / native (program)', scope: 'leaf', test: (f) => f.functionName === '(program)' },
  { category: 'ANN filter callback', scope: 'stack', test: (f) => (inFile(f, /retrieval\/unseen-search\.js$/) && named(f, 'allowed')) || (inFile(f, /retrieval\/ann\.js$/) && f.functionName === '') },
  { category: 'HNSW search (native)', scope: 'leaf', test: (f) => inFile(f, /retrieval\/(ann|ann-index|unseen-search)\.js$/) || named(f, 'searchKnn') },
  { category: 'search threads (messages)', scope: 'stack', test: (f) => inFile(f, /retrieval\/search-threads\.js$/) || (inFile(f, /node:internal\/worker/) && /postMessage|onmessage/i.test(f.functionName)) },
  { category: 'exact (ONNX)', scope: 'stack', test: (f) => inFile(f, /retrieval\/exact\.js$/) },
  { category: 're-ranking', scope: 'stack', test: (f) => named(f, 'rank', 'score', 'rankRows') && inFile(f, /(retriever|serving-model)\.js$/) },
  { category: 'seen filtering', scope: 'stack', test: (f) => named(f, 'isSeen', 'csrHas', 'unseen', 'countUnseen', 'seenCount', 'seenOf', 'markSeen') },
  { category: 'result + candidate caches', scope: 'stack', test: (f) => inFile(f, /(result-cache|candidate-cache)\.js$/) },
  { category: 'JSON serialization', scope: 'stack', test: (f) => inFile(f, /fast-json-stringify/) || named(f, 'serialize') },
  { category: 'online learning + log', scope: 'stack', test: (f) => inFile(f, /server\/online\/|interaction-log\.js$/) },
  { category: 'metrics (prom-client)', scope: 'stack', test: (f) => inFile(f, /prom-client/) },
  { category: 'query/body reading + validation', scope: 'stack', test: (f) => inFile(f, /http-input\.js$|\/ajv\/|fastify\/lib\/validation\.js$/) || named(f, 'validate') },
  { category: 'recommend logic (other)', scope: 'leaf', test: (f) => inFile(f, /dist\/server\/(serving|retrieval)\/|routes\/recommend\.js$/) },
  { category: 'socket writes (writev)', scope: 'leaf', test: (f) => named(f, 'writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String') },
];
export const OTHER = 'HTTP + fastify (other)';

export interface ProfileSplit {
  /** ms of samples in the window, by category (idle included) */
  ms: Record<string, number>;
  /** ms of samples in the window */
  totalMs: number;
  /** folded stacks: "root;…;leaf" → µs */
  folded: Map<string, number>;
  /** folded stacks' categories */
  categoryOf: Map<string, string>;
}

/** Charges every sample in [fromUs, toUs] (profile clock) to a category and folds its stack. */
export function splitProfile(p: CpuProfile, fromUs = -Infinity, toUs = Infinity): ProfileSplit {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Per node, once: its stack (root first, the "(root)" frame left out) and its category.
  const perNode = new Map<number, { key: string; category: string }>();
  const describe = (id: number) => {
    let d = perNode.get(id);
    if (d) return d;
    const frames: CallFrame[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) frames.push(byId.get(cur)!.callFrame);
    frames.reverse();
    const stack = frames.filter((f) => f.functionName !== '(root)');
    const leaf = frames[frames.length - 1];
    const rule = RULES.find((r) => (r.scope === 'leaf' ? r.test(leaf) : stack.some(r.test)));
    d = { key: stack.map(frameName).join(';') || '(root)', category: rule?.category ?? OTHER };
    perNode.set(id, d);
    return d;
  };
  const ms: Record<string, number> = {};
  const folded = new Map<string, number>();
  const categoryOf = new Map<string, string>();
  let t = p.startTime;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    // A sample stands for the time up to the next one.
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const d = describe(p.samples[i]);
    ms[d.category] = (ms[d.category] ?? 0) + dt / 1000;
    folded.set(d.key, (folded.get(d.key) ?? 0) + dt);
    categoryOf.set(d.key, d.category);
    total += dt / 1000;
  }
  return { ms, totalMs: total, folded, categoryOf };
}

/** µs per request by category, busy categories only (idle left out), largest first. */
export function perRequest(split: ProfileSplit, requests: number): { category: string; us: number; share: number }[] {
  const busy = Object.entries(split.ms).filter(([c]) => c !== 'idle');
  const busyMs = busy.reduce((a, [, v]) => a + v, 0);
  return busy
    .map(([category, v]) => ({ category, us: +((1000 * v) / Math.max(1, requests)).toFixed(2), share: +(v / Math.max(busyMs, 1e-9)).toFixed(4) }))
    .sort((a, b) => b.us - a.us);
}

const PALETTE = ['#e45756', '#f58518', '#eeca3b', '#54a24b', '#4c78a8', '#72b7b2', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac', '#88d27a', '#d6616b', '#637939', '#8ca252', '#bd9e39', '#ad494a', '#a55194'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface FlameNode {
  name: string;
  us: number;
  category: string;
  children: Map<string, FlameNode>;
}

/**
 * An icicle-style flame graph (root on top, width = time) of the folded stacks, idle left out;
 * each box coloured by the category of most of its time, its full name and time in a tooltip.
 */
export function flameGraphSvg(split: ProfileSplit, title: string, width = 1600): string {
  const root: FlameNode = { name: 'all', us: 0, category: OTHER, children: new Map() };
  const catUs = new Map<FlameNode, Map<string, number>>();
  const charge = (n: FlameNode, cat: string, us: number) => {
    let m = catUs.get(n);
    if (!m) catUs.set(n, (m = new Map()));
    m.set(cat, (m.get(cat) ?? 0) + us);
  };
  for (const [key, us] of split.folded) {
    const cat = split.categoryOf.get(key)!;
    if (cat === 'idle') continue;
    root.us += us;
    let n = root;
    for (const name of key.split(';')) {
      let c = n.children.get(name);
      if (!c) n.children.set(name, (c = { name, us: 0, category: cat, children: new Map() }));
      c.us += us;
      charge(c, cat, us);
      n = c;
    }
  }
  const categories = [...RULES.map((r) => r.category), OTHER].filter((c) => c !== 'idle');
  const color = (c: string) => PALETTE[categories.indexOf(c) % PALETTE.length];
  const rowH = 16;
  const top = 40;
  const rects: string[] = [];
  let depthMax = 0;
  const draw = (n: FlameNode, x: number, depth: number) => {
    const w = (n.us / Math.max(root.us, 1)) * width;
    if (w < 0.3) return;
    depthMax = Math.max(depthMax, depth);
    const cats = catUs.get(n);
    const cat = cats ? [...cats].sort((a, b) => b[1] - a[1])[0][0] : OTHER;
    const y = top + depth * rowH;
    const label = w > 40 ? esc(n.name.slice(0, Math.floor(w / 6.5))) : '';
    rects.push(
      `<g><title>${esc(n.name)} — ${(n.us / 1000).toFixed(1)} ms (${((100 * n.us) / Math.max(root.us, 1)).toFixed(1)}%), ${esc(cat)}</title>` +
        `<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${rowH - 1}" fill="${color(cat)}"/>` +
        (label ? `<text x="${(x + 3).toFixed(2)}" y="${y + 12}">${label}</text>` : '') +
        '</g>',
    );
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      draw(c, cx, depth + 1);
      cx += (c.us / Math.max(root.us, 1)) * width;
    }
  };
  draw(root, 0, 0);
  const legendY = top + (depthMax + 2) * rowH;
  const legend = categories.map((c, i) => `<rect x="${(i % 4) * 400}" y="${legendY + Math.floor(i / 4) * 18}" width="12" height="12" fill="${color(c)}"/><text x="${(i % 4) * 400 + 16}" y="${legendY + Math.floor(i / 4) * 18 + 11}">${esc(c)}</text>`);
  const height = legendY + Math.ceil(categories.length / 4) * 18 + 10;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="11">` +
    `<text x="0" y="20" font-size="14">${esc(title)}</text>` +
    rects.join('') +
    legend.join('') +
    '</svg>\n'
  );
}
