/** The load test's outputs: a terminal table, a JSON report and an SVG of each scenario's latency distribution. */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface ScenarioResult {
  scenario: string;
  requests: number;
  seconds: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** (percentile, ms) pairs for the plot */
  distribution: { percentile: number; ms: number }[];
  errors: number;
  timeouts: number;
  non2xx: number;
  ratioToBaseline: number | null;
  /** The machine's 1-minute load average at the end of the run (the cores are shared). */
  loadavg?: number;
  /** With --repeat: the round (1…N) of this run, whose ratio is to the baseline run just before it. */
  round?: number;
  /** The measured run's start and end (ms since the epoch). */
  window?: [number, number];
  /**
   * The started server's fine-tuning rounds that overlapped the measured run (attributeRounds):
   * how many, and for how many of its seconds one was in progress.
   */
  rounds?: { count: number; seconds: number };
}

/**
 * Fills each result's `rounds` from the server's log (pino JSON lines). A round runs from its
 * "fine-tuning round started" line to the next "done" or "failed" line (or the next start: a
 * round that found its version retired ends silently; or the log's last line: one still running
 * at shutdown); a log without start lines gives each "done" line's span from its `seconds`.
 * Lines that are not JSON are skipped.
 */
export function attributeRounds(results: ScenarioResult[], log: string): void {
  const spans: [number, number][] = [];
  let open: number | null = null;
  let last = 0;
  for (const line of log.split('\n')) {
    let e: { time?: number; seconds?: number; msg?: string };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue; // a partial or foreign line
    }
    if (typeof e.time !== 'number') continue;
    last = e.time;
    const msg = e.msg ?? '';
    if (!msg.startsWith('fine-tuning round ')) continue;
    if (msg === 'fine-tuning round started') {
      if (open !== null) spans.push([open, e.time]);
      open = e.time;
    } else if (msg === 'fine-tuning round done' || msg.startsWith('fine-tuning round failed')) {
      if (open !== null) spans.push([open, e.time]);
      else if (typeof e.seconds === 'number') spans.push([e.time - e.seconds * 1000, e.time]);
      open = null;
    }
  }
  if (open !== null) spans.push([open, last]);
  for (const r of results) {
    if (!r.window) continue;
    const [a, b] = r.window;
    let count = 0;
    let ms = 0;
    for (const [s, e] of spans) {
      const overlap = Math.min(b, e) - Math.max(a, s);
      if (overlap > 0 || (s >= a && s < b)) {
        count++;
        ms += Math.max(0, overlap);
      }
    }
    r.rounds = { count, seconds: +(ms / 1000).toFixed(2) };
  }
}

/** The middle value (mean of the two middle ones for an even count); NaN for none. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

const spread = (xs: number[]): Spread => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

/** One scenario over the rounds of a --repeat run. */
export interface RepeatSummary {
  scenario: string;
  runs: number;
  ratio: Spread;
  rps: Spread;
  p50Ms: Spread;
  p99Ms: Spread;
  errors: number;
  non2xx: number;
}

/** Per scenario, in first-seen order: the median and range of its runs' ratios, rates and latencies. */
export function summarize(results: ScenarioResult[]): RepeatSummary[] {
  const by = new Map<string, ScenarioResult[]>();
  for (const r of results) by.set(r.scenario, [...(by.get(r.scenario) ?? []), r]);
  return [...by].map(([scenario, rs]) => ({
    scenario,
    runs: rs.length,
    ratio: spread(rs.map((r) => r.ratioToBaseline ?? NaN)),
    rps: spread(rs.map((r) => r.rps)),
    p50Ms: spread(rs.map((r) => r.latencyMs.p50)),
    p99Ms: spread(rs.map((r) => r.latencyMs.p99)),
    errors: rs.reduce((a, r) => a + r.errors + r.timeouts, 0),
    non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
  }));
}

/** The --repeat table: median ratio to the paired baseline with its range, median rate and latencies. */
export function repeatTable(summary: RepeatSummary[]): string {
  const range = (x: Spread, f: (v: number) => string) => `${f(x.median)} (${f(x.min)}–${f(x.max)})`;
  const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
  const head = ['scenario', 'runs', 'vs baseline: median (min–max)', 'req/s median', 'p50 ms median', 'p99 ms median (min–max)', 'errors', 'non-2xx'];
  const rows = summary.map((s) => [s.scenario, String(s.runs), range(s.ratio, pct), s.rps.median.toFixed(0), s.p50Ms.median.toFixed(2), range(s.p99Ms, (v) => v.toFixed(2)), String(s.errors), String(s.non2xx)]);
  return layout(head, rows);
}

function layout(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

export function table(results: ScenarioResult[]): string {
  // The round column only for --repeat runs.
  const rounds = results.some((r) => r.round !== undefined);
  // The fine-tuning column only where the server's log was read (a started server).
  const tuning = results.some((r) => r.rounds !== undefined);
  const head = ['scenario', ...(rounds ? ['round'] : []), 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'vs baseline', 'load', ...(tuning ? ['fine-tuning'] : [])];
  const rows = results.map((r) => [
    r.scenario,
    ...(rounds ? [String(r.round ?? '-')] : []),
    r.rps.toFixed(0),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p90.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.latencyMs.max.toFixed(2),
    String(r.errors + r.timeouts),
    String(r.non2xx),
    r.ratioToBaseline === null ? '-' : `${(100 * r.ratioToBaseline).toFixed(0)}%`,
    r.loadavg === undefined ? '-' : r.loadavg.toFixed(1),
    ...(tuning ? [r.rounds ? (r.rounds.count ? `${r.rounds.count} round${r.rounds.count > 1 ? 's' : ''}, ${r.rounds.seconds.toFixed(1)} s` : 'none') : '-'] : []),
  ]);
  return layout(head, rows);
}

/** Latency by percentile (log-scaled tail axis), one line per scenario. */
export async function latencySvg(results: ScenarioResult[], title: string): Promise<string> {
  const values = results.flatMap((r) => r.distribution.map((d) => ({ scenario: r.round === undefined ? r.scenario : `${r.scenario} ${r.round}`, tail: 100 / (100 - Math.min(d.percentile, 99.999)), percentile: d.percentile, ms: d.ms })));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 640,
    height: 320,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'tail',
        type: 'quantitative',
        scale: { type: 'log' },
        axis: { title: 'percentile', values: [1, 2, 10, 100, 1000, 100000], labelExpr: "datum.value == 1 ? 'p0' : datum.value == 2 ? 'p50' : datum.value == 10 ? 'p90' : datum.value == 100 ? 'p99' : datum.value == 1000 ? 'p99.9' : 'p99.999'" },
      },
      y: { field: 'ms', type: 'quantitative', title: 'latency (ms)' },
      color: { field: 'scenario', type: 'nominal' },
      tooltip: [{ field: 'scenario' }, { field: 'percentile' }, { field: 'ms' }],
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}
