/** Child process for the exporter crash tests: exports a small synthetic bundle to argv[2]. */
import { exportBundle } from '../export/exporter.js';
import { syntheticBundle } from '../export/synthetic-bundle.js';

const repo = process.argv[2];
try {
  const r = exportBundle(syntheticBundle({ name: 'crash', users: 300, items: 500, dim: 16 }), {
    repo,
    hnsw: { space: 'ip', m: 8, efConstruction: 50, efSearch: 50, seed: 1 },
  });
  process.stdout.write(`${r.version}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
}
