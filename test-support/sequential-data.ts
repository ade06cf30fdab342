/**
 * Small sequential datasets for the tests: each user walks the catalog mostly one item at a time
 * (next = previous + 1, sometimes a random jump), so the next item follows from the last one while
 * popularity says nothing; and a float64 reference of the SASRec forward pass (the issue-19 contract).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../core/rng.js';

export interface SequentialDataOptions {
  users: number;
  items: number;
  /** each user's sequence length is drawn from minLen..maxLen */
  minLen: number;
  maxLen: number;
  seed: number;
  /** add a timestamp column and write the lines shuffled (the loader must sort them back) */
  timestamps?: boolean;
  /** probability of a random jump instead of the next item */
  jump?: number;
}

/** Writes DIR/seq.inter (leave-one-out: last item test, the one before validation); returns each user's sequence. */
export function writeSequentialDataset(dir: string, o: SequentialDataOptions): number[][] {
  const rng = new Rng(o.seed);
  const seqs: number[][] = [];
  const lines: { text: string; key: number }[] = [];
  let t = 1_600_000_000;
  for (let u = 0; u < o.users; u++) {
    const n = o.minLen + rng.int(o.maxLen - o.minLen + 1);
    const s = [rng.int(o.items)];
    while (s.length < n) s.push(rng.next() < (o.jump ?? 0.1) ? rng.int(o.items) : (s[s.length - 1] + 1) % o.items);
    seqs.push(s);
    s.forEach((item, j) => {
      const x = j === n - 1 ? 2 : j === n - 2 ? 1 : 0;
      t += 1 + rng.int(100);
      lines.push({ text: o.timestamps ? `${u}\t${item}\t${x}\t${t}` : `${u}\t${item}\t${x}`, key: rng.next() });
    });
  }
  if (o.timestamps) lines.sort((a, b) => a.key - b.key);
  mkdirSync(dir, { recursive: true });
  const header = o.timestamps ? 'userID\titemID\tx_label\ttimestamp' : 'userID\titemID\tx_label';
  writeFileSync(join(dir, 'seq.inter'), [header, ...lines.map((l) => l.text)].join('\n') + '\n');
  return seqs;
}

export interface RefShape {
  dim: number;
  blocks: number;
  heads: number;
  maxLen: number;
  ffDim: number;
  nItems: number;
}

/** The contract's forward pass in float64 for one left-padded sequence of width L: the user vector. */
export function referenceEncode(w: Map<string, Float32Array>, s: RefShape, seq: number[], eps = 1e-5): Float64Array {
  const { dim: d, heads: H, maxLen, nItems } = s;
  const L = seq.length;
  const dh = d / H;
  const get = (n: string) => w.get(n)!;
  const dense = (x: Float64Array[], wn: string, bn: string, din: number, dout: number) => {
    const W = get(wn);
    const b = get(bn);
    return x.map((row) => {
      const o = new Float64Array(dout);
      for (let j = 0; j < dout; j++) {
        let acc = b[j];
        for (let i = 0; i < din; i++) acc += row[i] * W[i * dout + j];
        o[j] = acc;
      }
      return o;
    });
  };
  const ln = (x: Float64Array[], p: string) =>
    x.map((row) => {
      const m = row.reduce((a, v) => a + v, 0) / d;
      const v = row.reduce((a, x2) => a + (x2 - m) ** 2, 0) / d;
      const g = get(`${p}.g`);
      const b = get(`${p}.b`);
      return Float64Array.from(row, (x2, i) => ((x2 - m) / Math.sqrt(v + eps)) * g[i] + b[i]);
    });
  const emb = get('seq.item_emb');
  const pos = get('seq.pos_emb');
  let h = seq.map((r, j) => Float64Array.from({ length: d }, (_, c) => (r === nItems ? 0 : emb[r * d + c] * Math.sqrt(d) + pos[(maxLen - L + j) * d + c])));
  for (let k = 0; k < s.blocks; k++) {
    const b = `seq.b${k}`;
    const x = ln(h, `${b}.ln1`);
    const q = dense(x, `${b}.attn.wq`, `${b}.attn.bq`, d, d);
    const kk = dense(x, `${b}.attn.wk`, `${b}.attn.bk`, d, d);
    const v = dense(x, `${b}.attn.wv`, `${b}.attn.bv`, d, d);
    const ctx = seq.map(() => new Float64Array(d));
    for (let hd = 0; hd < H; hd++) {
      for (let j = 0; j < L; j++) {
        const allowed = [...Array(L).keys()].filter((i) => i === j || (i <= j && seq[i] !== nItems));
        const sc = allowed.map((i) => {
          let acc = 0;
          for (let c = hd * dh; c < (hd + 1) * dh; c++) acc += q[j][c] * kk[i][c];
          return acc / Math.sqrt(dh);
        });
        const mx = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - mx));
        const z = e.reduce((a2, x2) => a2 + x2, 0);
        allowed.forEach((i, t) => {
          for (let c = hd * dh; c < (hd + 1) * dh; c++) ctx[j][c] += (e[t] / z) * v[i][c];
        });
      }
    }
    const att = dense(ctx, `${b}.attn.wo`, `${b}.attn.bo`, d, d);
    h = h.map((row, j) => Float64Array.from(row, (x2, c) => x2 + att[j][c]));
    const y = ln(h, `${b}.ln2`);
    const f1 = dense(y, `${b}.ffn.w1`, `${b}.ffn.b1`, d, s.ffDim).map((row) => row.map((x2) => 0.5 * x2 * (1 + erf(x2 / Math.SQRT2))));
    const f2 = dense(f1, `${b}.ffn.w2`, `${b}.ffn.b2`, s.ffDim, d);
    h = h.map((row, j) => Float64Array.from(row, (x2, c) => x2 + f2[j][c]));
  }
  return ln(h, 'seq.ln')[L - 1];
}

/** erf to ~1e-15 (Taylor series near 0, continued fraction for the tail). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = ax;
    let term = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz), ax ≥ 3
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
