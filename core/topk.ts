/** Top-k of a score row by a bounded min-heap: O(n log k), no sort of the whole row. */

/**
 * Writes the indices of the k largest finite entries of scores[offset .. offset+n) into
 * `out` (best first) and returns how many were written (fewer when fewer are finite).
 * Ties keep the lower index first, so results are deterministic.
 */
export function topK(scores: Float32Array, offset: number, n: number, k: number, out: Int32Array): number {
  const heapIdx = new Int32Array(k);
  const heapVal = new Float32Array(k);
  let size = 0;
  for (let j = 0; j < n; j++) {
    const v = scores[offset + j];
    if (v === -Infinity || v !== v) continue;
    if (size < k) {
      // sift up
      let i = size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (worse(heapVal[p], heapIdx[p], v, j)) break;
        heapVal[i] = heapVal[p];
        heapIdx[i] = heapIdx[p];
        i = p;
      }
      heapVal[i] = v;
      heapIdx[i] = j;
    } else if (v > heapVal[0]) {
      siftDown(heapVal, heapIdx, size, v, j);
    }
  }
  // Pop the heap worst-first into the tail of `out`.
  for (let m = size - 1; m >= 0; m--) {
    out[m] = heapIdx[0];
    const lastV = heapVal[m];
    const lastI = heapIdx[m];
    if (m > 0) siftDown(heapVal, heapIdx, m, lastV, lastI);
  }
  return size;
}

/** true when (va, ia) ranks below (vb, ib): lower score, or equal score and higher index. */
function worse(va: number, ia: number, vb: number, ib: number): boolean {
  return va < vb || (va === vb && ia > ib);
}

function siftDown(heapVal: Float32Array, heapIdx: Int32Array, size: number, v: number, j: number): void {
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    const r = l + 1;
    let c = l;
    if (r < size && worse(heapVal[r], heapIdx[r], heapVal[l], heapIdx[l])) c = r;
    if (!worse(heapVal[c], heapIdx[c], v, j)) break;
    heapVal[i] = heapVal[c];
    heapIdx[i] = heapIdx[c];
    i = c;
  }
  heapVal[i] = v;
  heapIdx[i] = j;
}
