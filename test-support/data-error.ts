import assert from 'node:assert/strict';
import { DataFileError } from '../core/errors.js';

/** fn throws a one-line DataFileError whose message mentions every needle. */
export function assertDataError(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DataFileError, `expected DataFileError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'message must be one line');
    for (const n of needles) assert.ok(err.message.includes(n), `"${err.message}" should mention "${n}"`);
    return true;
  });
}
