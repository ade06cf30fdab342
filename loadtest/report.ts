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
}

export function table(results: ScenarioResult[]): string {
  const head = ['scenario', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'vs baseline'];
  const rows = results.map((r) => [
    r.scenario,
    r.rps.toFixed(0),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p90.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.latencyMs.max.toFixed(2),
    String(r.errors + r.timeouts),
    String(r.non2xx),
    r.ratioToBaseline === null ? '-' : `${(100 * r.ratioToBaseline).toFixed(0)}%`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/** Latency by percentile (log-scaled tail axis), one line per scenario. */
export async function latencySvg(results: ScenarioResult[], title: string): Promise<string> {
  const values = results.flatMap((r) => r.distribution.map((d) => ({ scenario: r.scenario, tail: 100 / (100 - Math.min(d.percentile, 99.999)), percentile: d.percentile, ms: d.ms })));
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
