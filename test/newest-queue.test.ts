/** The bounded backlog of the online learner keeps exactly the newest items, in order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NewestQueue } from '../server/online/newest-queue.js';

test('keeps the newest max items in order across many overflows, and take() empties it', () => {
  const q = new NewestQueue<number>(5);
  for (let n = 0; n < 3; n++) q.push(n);
  assert.equal(q.length, 3);
  for (let n = 3; n < 23; n++) q.push(n); // past the bound several times (compactions included)
  assert.equal(q.length, 5);
  assert.deepEqual(q.take(), [18, 19, 20, 21, 22]);
  assert.equal(q.length, 0);
  assert.deepEqual(q.take(), []);
  q.push(7);
  q.clear();
  assert.equal(q.length, 0);
  q.push(8);
  assert.deepEqual(q.take(), [8]);
});
