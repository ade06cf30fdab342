/**
 * bench:exact-stall — how long the exact path holds the event loop (issue 23), on a model's newest
 * bundle, with the server's ONNX settings:
 *
 * 1. Exact queries: `--concurrency` callers each asking the exact scorer for the top 20 of a random
 *    user's vector, back to back, for `--seconds`: queries/s, and the event loop's
 *    delay meanwhile (perf_hooks' histogram: p99 and max). A run on the event loop holds it for the
 *    whole run; a run on the scorer's thread does not.
 * 2. A fine-tuning round's refresh of the exact path (ServingModel.replaceExact: a new session over the item
 *    table, swapped in), with a 1 ms timer ticking: its wall time and the event loop's longest
 *    delay during it.
 *
 *   node dist/bench/exact-stall.js [--name scale-1m] [--repo models] [--seconds 5] [--concurrency 8] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { DEFAULTS } from '../core/defaults.js';
import { Rng } from '../core/rng.js';
import { scriptArgs } from '../core/script-args.js';
import { listVersions, versionDir } from '../repository/versions.js';
import { loadServingModel } from '../server/serving/serving-model.js';

const { values: a } = scriptArgs(import.meta.url, {
  options: {
    name: { type: 'string', default: 'scale-1m' },
    repo: { type: 'string', default: process.env.PROMPTMM_REPO ?? 'models' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '8' },
    json: { type: 'string' },
  },
});
const version = listVersions(a.repo!, a.name!).at(-1);
if (version === undefined) {
  process.stderr.write(`exact-stall: model ${a.name} has no bundle in ${a.repo}: train and export one first\n`);
  process.exit(2);
}
const log = pino({ level: 'warn' });
const t0 = performance.now();
const model = await loadServingModel(versionDir(a.repo!, a.name!, version), { providers: ['cpu'], onnxThreads: DEFAULTS.onnxThreads, log, cacheUsers: 0 });
const loadS = (performance.now() - t0) / 1000;
const d = model.dim;
const nUsers = model.userIndex.size;
const rng = new Rng(11);
const ms = (ns: number) => Number((ns / 1e6).toFixed(2));

// 1. exact queries back to back
const h = monitorEventLoopDelay({ resolution: 1 });
const end = performance.now() + Number(a.seconds) * 1000;
let queries = 0;
h.enable();
await Promise.all(
  Array.from({ length: Number(a.concurrency) }, async () => {
    while (performance.now() < end) {
      const u = rng.int(nUsers);
      await model.exact.topK(model.userVectors.subarray(u * d, (u + 1) * d), 20);
      queries++;
    }
  }),
);
h.disable();
const exactRun = { queriesPerSecond: Math.round(queries / Number(a.seconds)), eventLoopDelayMs: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) } };

// 2. the refresh, a 1 ms timer ticking
let longest = 0;
let last = performance.now();
const tick = setInterval(() => {
  const now = performance.now();
  longest = Math.max(longest, now - last);
  last = now;
}, 1);
const r0 = performance.now();
const ok = await model.replaceExact(() => true, log);
const refreshMs = performance.now() - r0;
clearInterval(tick);
longest = Math.max(longest, performance.now() - last);
const check = await model.exact.topK(model.userVectors.subarray(0, d), 20);
await model.close();

const result = {
  model: `${a.name} v${version}`,
  items: model.nItems,
  dim: d,
  loadSeconds: Number(loadS.toFixed(1)),
  concurrency: Number(a.concurrency),
  exact: exactRun,
  refresh: { ok, wallMs: Math.round(refreshMs), longestEventLoopGapMs: Number(longest.toFixed(1)), answersAfter: check.rows.length },
  load: loadavg().map((x) => Number(x.toFixed(1))),
};
process.stdout.write(
  `exact-stall ${result.model} (${result.items} items, dim ${d}; load ${result.load.join(' ')})\n` +
    `  exact, ${result.concurrency} callers: ${exactRun.queriesPerSecond} queries/s; event-loop delay p50 ${exactRun.eventLoopDelayMs.p50} ms, p99 ${exactRun.eventLoopDelayMs.p99} ms, max ${exactRun.eventLoopDelayMs.max} ms\n` +
    `  refresh of the exact path: ${result.refresh.wallMs} ms; longest event-loop gap ${result.refresh.longestEventLoopGapMs} ms\n`,
);
if (a.json) writeFileSync(a.json, JSON.stringify(result, null, 2) + '\n');
