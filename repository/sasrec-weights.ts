/**
 * The SASRec encoder's weights as the trainer's checkpoint names them (the contract of issue 19:
 * float32, row-major, `x @ W` with W [d_in, d_out]) and their shapes. One list shared by the
 * ONNX graph, the plain-TS forward and the bundle check, so the three read the same arrays.
 */

/** The encoder's architecture: what the checkpoint's `meta.shape` holds (plus the layer-norm epsilon). */
export interface SequenceShape {
  dim: number;
  blocks: number;
  heads: number;
  maxLen: number;
  ffDim: number;
  /** Catalog size; row nItems of the item table is the padding row. */
  nItems: number;
  /** LayerNorm epsilon (biased variance); the contract's 1e-5 when absent. */
  lnEps?: number;
}

export const DEFAULT_LN_EPS = 1e-5;

/** The arrays a checkpoint or a caller hands over: named arrays (any extra, e.g. Adam moments, ignored). */
export type SequenceArrays = readonly { name: string; data: Float32Array }[] | ReadonlyMap<string, Float32Array | { data: Float32Array }>;

export class SequenceWeightsError extends Error {
  override readonly name = 'SequenceWeightsError';
}

/** Every weight the encoder reads, with its shape, in the contract's order. */
export function sequenceWeightShapes(s: SequenceShape): [string, number[]][] {
  const { dim: d, ffDim: f } = s;
  const out: [string, number[]][] = [
    ['seq.item_emb', [s.nItems + 1, d]],
    ['seq.pos_emb', [s.maxLen, d]],
  ];
  for (let k = 0; k < s.blocks; k++) {
    const p = `seq.b${k}.`;
    out.push([`${p}ln1.g`, [d]], [`${p}ln1.b`, [d]]);
    for (const w of ['wq', 'wk', 'wv', 'wo']) out.push([`${p}attn.${w}`, [d, d]]);
    for (const b of ['bq', 'bk', 'bv', 'bo']) out.push([`${p}attn.${b}`, [d]]);
    out.push([`${p}ln2.g`, [d]], [`${p}ln2.b`, [d]]);
    out.push([`${p}ffn.w1`, [d, f]], [`${p}ffn.b1`, [f]], [`${p}ffn.w2`, [f, d]], [`${p}ffn.b2`, [d]]);
  }
  out.push(['seq.ln.g', [d]], ['seq.ln.b', [d]]);
  return out;
}

/** Checks the architecture's numbers: positive integers, heads dividing dim. */
export function checkSequenceShape(s: SequenceShape): void {
  for (const key of ['dim', 'blocks', 'heads', 'maxLen', 'ffDim', 'nItems'] as const) {
    const v = s[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new SequenceWeightsError(`shape.${key} is ${JSON.stringify(v)}, expected a positive integer`);
  }
  if (s.dim % s.heads !== 0) throw new SequenceWeightsError(`shape.heads (${s.heads}) must divide shape.dim (${s.dim})`);
  const eps = s.lnEps ?? DEFAULT_LN_EPS;
  if (!(eps > 0 && Number.isFinite(eps))) throw new SequenceWeightsError(`shape.lnEps is ${JSON.stringify(s.lnEps)}, expected a positive number`);
}

/** The encoder's weights by name, each checked for presence, size and finite values; an error names the first bad one. */
export function sequenceWeights(arrays: SequenceArrays, s: SequenceShape): Map<string, Float32Array> {
  checkSequenceShape(s);
  const get = (name: string): Float32Array | undefined => {
    if (Array.isArray(arrays)) return (arrays as readonly { name: string; data: Float32Array }[]).find((a) => a.name === name)?.data;
    const v = (arrays as ReadonlyMap<string, Float32Array | { data: Float32Array }>).get(name);
    return v === undefined ? undefined : v instanceof Float32Array ? v : v.data;
  };
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of sequenceWeightShapes(s)) {
    const a = get(name);
    if (!a) throw new SequenceWeightsError(`weight "${name}" is missing`);
    const n = shape.reduce((x, y) => x * y, 1);
    if (a.length !== n) throw new SequenceWeightsError(`weight "${name}" holds ${a.length} values, expected [${shape.join(', ')}] = ${n}`);
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) throw new SequenceWeightsError(`weight "${name}" has a non-finite value at index ${i} (${a[i]})`);
    }
    out.set(name, a);
  }
  return out;
}
