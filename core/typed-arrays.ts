/** Growing a typed array that is indexed by row as rows are added (items put online, say). */

type Growable = Float32Array | Uint8Array;

/**
 * `a` itself when it holds `n` entries, else a copy with room for at least `n` (doubling, so that
 * rows added one by one cost amortised O(1)); the new entries are zero.
 */
export function grownTo<T extends Growable>(a: T, n: number): T {
  if (n <= a.length) return a;
  const grown = new (a.constructor as new (length: number) => T)(Math.max(n, a.length * 2));
  grown.set(a);
  return grown;
}
