/** Student checkpoint + its dataset → the in-memory bundle the exporter writes. */
import { loadStudent } from '../trainer/stages/student-io.js';
import { readAbsorbed } from '../data/absorb-log.js';
import { rowIds } from '../data/ids.js';
import { studentCheckpointDir } from '../trainer/stages/student.js';
import { hasCheckpoint } from '../trainer/checkpoint.js';
import type { BundleInput } from './exporter.js';
import { ExportError } from './exporter.js';
import { assertFolder } from '../repository/versions.js';

export function bundleFromCheckpoint(repo: string, name: string, opts: { dataDir?: string } = {}): BundleInput {
  assertFolder(repo, 'model repository');
  const dir = studentCheckpointDir(repo, name);
  if (!hasCheckpoint(dir)) {
    throw new ExportError(`no student checkpoint at ${dir} (train one first: promptmm train --data DIR --name ${name})`);
  }
  const s = loadStudent(dir, opts.dataDir);
  const { nUsers, nItems } = s.data;
  const dim = s.meta.config.dim;
  if (s.final.length !== (nUsers + nItems) * dim) {
    throw new ExportError(`${dir}: embeddings hold ${s.final.length} values, expected (${nUsers} users + ${nItems} items) × dim ${dim}`);
  }
  return {
    name,
    dataset: { name: s.data.name, hash: s.data.hash, dir: s.data.dir },
    nUsers,
    nItems,
    dim,
    userEmbeddings: s.final.slice(0, nUsers * dim),
    itemEmbeddings: s.final.slice(nUsers * dim),
    // Row numbers unless the dataset names its rows (ids.json: users first seen by the server).
    ids: s.data.ids ?? { users: rowIds(nUsers), items: rowIds(nItems) },
    seen: s.data.trainByUser,
    popularity: s.data.itemPopularity,
    training: { objective: s.meta.objective, backend: s.meta.backend, parameters: s.meta.parameters, bestEpoch: s.meta.epoch, ...s.meta.config, model: s.meta.model },
    metrics: s.meta.metrics,
    // Trained with `--interactions LOG`: the log records this model has absorbed.
    logPosition: readAbsorbed(s.data.dir)?.logPosition ?? 0,
  };
}
