/**
 * PLACEHOLDER on branch h-seqserve (issue 19): the sequences the exporter needs, with exactly the
 * signature of the helpers' contract. The trainer's branch (h-seqtrain) owns this file and its
 * real version (the loader's time order: a `timestamp` column, else file order) replaces this
 * one at merge. Here: each split's lines in file order, train then validation then test.
 */
import type { Csr } from '../core/csr.js';
import type { Dataset } from './dataset.js';

/** Row u = user u's item rows of splits ≤ upTo (0 train, 1 + validation, 2 + test), in time order, repeats kept, not truncated. */
export function userSequences(data: Dataset, upTo: 0 | 1 | 2): Csr {
  const splits = [data.train, data.val, data.test].slice(0, upTo + 1);
  const indptr = new Int32Array(data.nUsers + 1);
  for (const s of splits) for (const u of s.users) indptr[u + 1]++;
  for (let u = 0; u < data.nUsers; u++) indptr[u + 1] += indptr[u];
  const fill = indptr.slice(0, data.nUsers);
  const indices = new Int32Array(indptr[data.nUsers]);
  for (const s of splits) for (let i = 0; i < s.users.length; i++) indices[fill[s.users[i]]++] = s.items[i];
  return { indptr, indices };
}
