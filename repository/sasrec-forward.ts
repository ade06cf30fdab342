/**
 * The SASRec encoder's forward pass in plain TypeScript, float64, written line by line from the
 * contract of issue 19 (evaluation mode, no dropout). The tests hold sequence.onnx to it (max
 * abs difference ≤ 1e-4); the exporter uses it for the bundle's user vectors (each user's
 * sequence at export time), so it favours being obviously right over being fast.
 */
import { DEFAULT_LN_EPS, sequenceWeights, type SequenceArrays, type SequenceShape } from './sasrec-weights.js';

function layerNorm(x: Float64Array, g: Float32Array, b: Float32Array, eps: number): Float64Array {
  const d = x.length;
  let mean = 0;
  for (let i = 0; i < d; i++) mean += x[i];
  mean /= d;
  let v = 0;
  for (let i = 0; i < d; i++) v += (x[i] - mean) ** 2;
  const inv = 1 / Math.sqrt(v / d + eps); // biased variance, as torch's LayerNorm
  const out = new Float64Array(d);
  for (let i = 0; i < d; i++) out[i] = (x[i] - mean) * inv * g[i] + b[i];
  return out;
}

/** x [din] @ W [din, dout] + bias. */
function affine(x: Float64Array, w: Float32Array, bias: Float32Array, dout: number): Float64Array {
  const out = Float64Array.from(bias);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    for (let o = 0; o < dout; o++) out[o] += xi * w[i * dout + o];
  }
  return out;
}

/** erf to ~1e-15 (Taylor series near 0, continued fraction of erfc beyond). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))), evaluated bottom-up.
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** A forward pass bound to one set of weights. */
export class SasrecForward {
  private readonly w: Map<string, Float32Array>;
  private readonly eps: number;

  constructor(arrays: SequenceArrays, readonly shape: SequenceShape) {
    this.w = sequenceWeights(arrays, shape);
    this.eps = shape.lnEps ?? DEFAULT_LN_EPS;
  }

  /**
   * User vectors for `batch` rows of `width` item rows each, left-padded with the padding row
   * nItems (width ≤ maxLen): float64 [batch × dim].
   */
  encode(rows: ArrayLike<number>, batch: number, width: number): Float64Array {
    const { dim: d, maxLen, nItems } = this.shape;
    if (width < 1 || width > maxLen) throw new RangeError(`width ${width} is outside 1..${maxLen}`);
    if (rows.length !== batch * width) throw new RangeError(`${rows.length} item rows for ${batch} × ${width}`);
    const out = new Float64Array(batch * d);
    for (let b = 0; b < batch; b++) out.set(this.encodeRow(Array.from({ length: width }, (_, j) => rows[b * width + j]), nItems), b * d);
    return out;
  }

  /** The vector of one unpadded sequence (its last maxLen items), or null for an empty one. */
  encodeSequence(items: ArrayLike<number>): Float64Array | null {
    if (items.length === 0) return null;
    const { maxLen, nItems } = this.shape;
    const seq = Array.from(items).slice(-maxLen);
    return this.encodeRow(seq, nItems);
  }

  private encodeRow(seq: number[], pad: number): Float64Array {
    const { dim: d, maxLen, heads, ffDim, nItems } = this.shape;
    const L = seq.length;
    const w = (n: string) => this.w.get(n)!;
    const itemEmb = w('seq.item_emb');
    const posEmb = w('seq.pos_emb');
    const real = seq.map((r) => r !== pad);
    let h: Float64Array[] = seq.map((r, j) => {
      if (!Number.isInteger(r) || r < 0 || r > nItems) throw new RangeError(`item row ${r} is outside 0..${nItems}`);
      const v = new Float64Array(d);
      const p = maxLen - L + j;
      for (let c = 0; c < d; c++) v[c] = real[j] ? itemEmb[r * d + c] * Math.sqrt(d) + posEmb[p * d + c] : 0;
      return v;
    });
    const dh = d / heads;
    for (let k = 0; k < this.shape.blocks; k++) {
      const p = `seq.b${k}`;
      const x = h.map((v) => layerNorm(v, w(`${p}.ln1.g`), w(`${p}.ln1.b`), this.eps));
      const q = x.map((v) => affine(v, w(`${p}.attn.wq`), w(`${p}.attn.bq`), d));
      const kk = x.map((v) => affine(v, w(`${p}.attn.wk`), w(`${p}.attn.bk`), d));
      const vv = x.map((v) => affine(v, w(`${p}.attn.wv`), w(`${p}.attn.bv`), d));
      const att = h.map(() => new Float64Array(d));
      for (let hd = 0; hd < heads; hd++) {
        const o = hd * dh;
        for (let j = 0; j < L; j++) {
          // Keys i ≤ j that are not padding, and always j itself.
          const keys: number[] = [];
          for (let i = 0; i <= j; i++) if (i === j || real[i]) keys.push(i);
          const s = keys.map((i) => {
            let dot = 0;
            for (let c = 0; c < dh; c++) dot += q[j][o + c] * kk[i][o + c];
            return dot / Math.sqrt(dh);
          });
          const mx = Math.max(...s);
          const e = s.map((z) => Math.exp(z - mx));
          const z = e.reduce((a, b) => a + b, 0);
          keys.forEach((i, n) => {
            for (let c = 0; c < dh; c++) att[j][o + c] += (e[n] / z) * vv[i][o + c];
          });
        }
      }
      h = h.map((v, j) => {
        const a = affine(att[j], w(`${p}.attn.wo`), w(`${p}.attn.bo`), d);
        const h1 = v.map((x0, c) => x0 + a[c]);
        const f = affine(layerNorm(h1, w(`${p}.ln2.g`), w(`${p}.ln2.b`), this.eps), w(`${p}.ffn.w1`), w(`${p}.ffn.b1`), ffDim).map(gelu);
        const f2 = affine(f, w(`${p}.ffn.w2`), w(`${p}.ffn.b2`), d);
        return h1.map((x0, c) => x0 + f2[c]);
      });
    }
    return layerNorm(h[L - 1], w('seq.ln.g'), w('seq.ln.b'), this.eps);
  }
}
