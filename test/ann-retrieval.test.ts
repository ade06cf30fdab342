/** The ANN path's seen filter (over-fetching, and the filtered search it falls back to) and its candidate cache, against brute force. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { versionDir } from '../repository/versions.js';
import { annRetriever } from '../server/retrieval/ann.js';
import { loadServingModel } from '../server/serving/serving-model.js';
import type { SeenFilter } from '../server/retrieval/retriever.js';
import { repoWith } from '../test-support/serving.js';

const { repo } = repoWith('ann');
const m = await loadServingModel(versionDir(repo, 'ann', 1), { providers: ['cpu'], cacheUsers: 100 });

/** The user's rows by the student's score, best first (ties by lower row). */
const ranking = (row: number) => Array.from({ length: m.nItems }, (_, i) => i).sort((a, b) => m.score(m.userVector(row), b) - m.score(m.userVector(row), a) || a - b);
const filterOf = (row: number): SeenFilter => ({ count: m.seenCount(row), has: (i) => m.isSeen(row, i) });
const answer = async (row: number, k: number) => (await annRetriever.retrieve(m, { row, vector: m.userVector(row).slice(), k, seen: filterOf(row) })).items.map((x) => x.row);
const unseenTop = (row: number, k: number) => ranking(row).filter((i) => !m.isSeen(row, i)).slice(0, k);

test('a light user: the over-fetched search, seen items dropped, is the exact unseen top k', async () => {
  const row = m.userIndex.get('u3')!;
  assert.ok(m.seenCount(row) > 0);
  assert.deepEqual(await answer(row, 20), unseenTop(row, 20));
});

test('a user whose history crowds the top: the filtered search takes over and the answer stays exact', async () => {
  const row = m.userIndex.get('u9')!;
  // 70 of the user's 80 best items seen: the unfiltered search for 40 + 40 keeps only ~10 unseen.
  for (const i of ranking(row).slice(0, 70)) m.addSeen(row, i);
  m.candidates.dropUser(row);
  const top = unseenTop(row, 20);
  assert.equal(top.filter((i) => ranking(row).indexOf(i) < 80).length < 20, true);
  assert.deepEqual(await answer(row, 20), top);
  // Cached candidates answer again, and a larger k than they hold searches anew.
  assert.deepEqual(await answer(row, 10), unseenTop(row, 10));
  assert.deepEqual(await answer(row, 60), unseenTop(row, 60));
});
