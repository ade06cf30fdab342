/**
 * What the load test sends: request paths for each scenario, with users drawn from the model's
 * real user set under a skewed (Zipf-like, s = 1) popularity: the most active users (longest
 * train history) are asked for most often, as product traffic does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_FILES, type IdMaps } from '../repository/bundle-format.js';
import { listVersions, versionDir } from '../repository/versions.js';
import { parseNpyInt32 } from '../core/npy.js';
import { Rng } from '../core/rng.js';

export const SCENARIOS = ['baseline', 'recommend', 'exact', 'mixed', 'cold'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Traffic {
  users: string[];
  items: string[];
  /** cumulative weights over users (by activity rank) */
  cdf: Float64Array;
}

export function loadTraffic(repo: string, name: string): Traffic {
  const v = listVersions(repo, name).at(-1);
  if (v === undefined) throw new Error(`model ${name} has no exported version in ${repo}: export one first`);
  const dir = versionDir(repo, name, v);
  const ids = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.ids), 'utf8')) as IdMaps;
  const off = parseNpyInt32(readFileSync(join(dir, BUNDLE_FILES.seenOffsets)), BUNDLE_FILES.seenOffsets).data;
  const order = Array.from({ length: ids.users.length }, (_, i) => i).sort((a, b) => off[b + 1] - off[b] - (off[a + 1] - off[a]) || a - b);
  const cdf = new Float64Array(order.length);
  let acc = 0;
  for (let r = 0; r < order.length; r++) cdf[r] = acc += 1 / (r + 1);
  for (let r = 0; r < cdf.length; r++) cdf[r] /= acc;
  return { users: order.map((i) => ids.users[i]), items: ids.items, cdf };
}

/** A user drawn from the skewed popularity (inverse CDF by binary search). */
export function zipfUser(t: Traffic, rng: Rng): string {
  const x = rng.next();
  let lo = 0;
  let hi = t.cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t.cdf[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return t.users[lo];
}

export interface PlannedRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

/** A long, reproducible list of requests for a scenario; the load generator cycles through it. */
export function planRequests(s: Scenario, t: Traffic, n: number, seed = 1, k = 20): PlannedRequest[] {
  const rng = new Rng(seed);
  const out: PlannedRequest[] = [];
  for (let i = 0; i < n; i++) {
    const user = encodeURIComponent(zipfUser(t, rng));
    switch (s) {
      case 'baseline':
        out.push({ method: 'GET', path: '/healthz' });
        break;
      case 'recommend':
        out.push({ method: 'GET', path: `/recommend?user=${user}&k=${k}` });
        break;
      case 'exact':
        out.push({ method: 'GET', path: `/recommend?user=${user}&k=${k}&retrieval=exact` });
        break;
      case 'cold':
        out.push({ method: 'GET', path: `/recommend?user=loadtest-new-${seed}-${i}&k=${k}` });
        break;
      case 'mixed':
        if (rng.next() < 0.1) {
          const item = t.items[rng.int(t.items.length)];
          out.push({ method: 'POST', path: '/interactions', body: JSON.stringify({ interactions: [{ user: zipfUser(t, rng), item }] }) });
        } else {
          out.push({ method: 'GET', path: `/recommend?user=${user}&k=${k}` });
        }
        break;
    }
  }
  return out;
}
