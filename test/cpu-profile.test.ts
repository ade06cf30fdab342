/** bench/cpu-profile.ts: samples in a window charged to request cost categories, folded, drawn. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flameGraphSvg, OTHER, perRequest, splitProfile, type CpuProfile } from '../bench/cpu-profile.js';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });
// root → handler (fastify) → candidates (ann.js: the native search's time) → filter callback (ann.js, anonymous)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 5] },
    { id: 2, callFrame: frame('routeHandler', 'file:///x/node_modules/fastify/lib/route.js'), children: [3] },
    { id: 3, callFrame: frame('candidates', 'file:///x/dist/server/retrieval/ann.js'), children: [4] },
    { id: 4, callFrame: frame('', 'file:///x/dist/server/retrieval/ann.js') },
    { id: 5, callFrame: frame('(idle)') },
  ],
  startTime: 1000,
  endTime: 2000,
  // sample i lasts timeDeltas[i + 1] µs
  samples: [2, 3, 3, 4, 5, 2],
  timeDeltas: [0, 100, 100, 100, 100, 100, 100],
};

test('samples are charged to categories: native search, its filter callback, HTTP, idle', () => {
  const s = splitProfile(profile);
  assert.deepEqual(s.ms, { [OTHER]: 0.2, 'HNSW search (native)': 0.2, 'ANN filter callback': 0.1, idle: 0.1 });
  assert.equal(s.folded.get('routeHandler lib/route.js;candidates retrieval/ann.js'), 200);
  const per = perRequest(s, 2);
  assert.deepEqual(per.map((c) => [c.category, c.us]), [[OTHER, 100], ['HNSW search (native)', 100], ['ANN filter callback', 50]]);
  assert.match(flameGraphSvg(s, 't'), /^<svg[^]*candidates retrieval\/ann\.js[^]*<\/svg>\n$/);
});

test('only samples inside the window count', () => {
  const s = splitProfile(profile, 1150, 1350);
  assert.equal(s.totalMs, 0.2); // the samples at 1200 and 1300 µs
  assert.equal(s.ms.idle, undefined);
});
