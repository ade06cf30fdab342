/**
 * Synthetic multimodal datasets in the MMRec layout, for tests and the demo. Interactions come
 * from latent user/item factors plus an item popularity bias, so a collaborative model has
 * something to learn beyond popularity; features are noisy projections of the item factors,
 * so the modalities carry real (partial) signal.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { type NpyDtype, writeNpy } from '../core/npy.js';
import { Rng } from '../core/rng.js';
import { DEFAULTS } from '../core/defaults.js';

export interface SyntheticModality {
  name: string;
  dim: number;
  /** 0..1: share of the item factor in the features (the rest is noise). Default 0.7. */
  signal?: number;
}

export interface SyntheticOptions {
  dir: string;
  /** Basename of the .inter file. Default "synthetic". */
  name?: string;
  users?: number;
  items?: number;
  latentDim?: number;
  /** Mean; the per-user count varies (log-normal), at least 3 so every split can be non-empty. */
  interactionsPerUser?: number;
  modalities?: SyntheticModality[];
  dtype?: NpyDtype;
  seed?: number;
  crlf?: boolean;
  /** Add a `rating` column (between itemID and x_label) to exercise header handling. */
  extraColumns?: boolean;
}

export interface InterRow {
  user: number;
  item: number;
  /** x_label: 0 train, 1 validation, 2 test. */
  x: number;
  rating?: number;
}

/** Softmax temperature of the preference logits: lower = users more predictable from factors. */
const TAU = 0.5;
/** Std of the log-popularity bias. */
const BIAS_STD = 1.0;

export function generateSynthetic(opts: SyntheticOptions): { dir: string; interFile: string; interactions: number } {
  const name = opts.name ?? 'synthetic';
  const nUsers = opts.users ?? DEFAULTS.users;
  const nItems = opts.items ?? DEFAULTS.items;
  const k = opts.latentDim ?? 16;
  const mean = opts.interactionsPerUser ?? DEFAULTS.interactionsPerUser;
  const mods = opts.modalities ?? [
    { name: 'image', dim: 64, signal: 0.7 },
    { name: 'audio', dim: 32, signal: 0.7 },
  ];
  const dtype = opts.dtype ?? DEFAULTS.dtype;
  const seed = opts.seed ?? DEFAULTS.generateSeed;
  checkOptions(name, nUsers, nItems, k, mean, mods);

  mkdirSync(opts.dir, { recursive: true });
  refuseToMix(opts.dir, name, mods);

  // Separate streams, so e.g. adding a modality does not change the interactions.
  const rngFactors = new Rng(seed);
  const rngChoice = new Rng((seed + 0x9e3779b9) >>> 0);

  const V = normals(rngFactors, nItems * k);
  const U = normals(rngFactors, nUsers * k);
  const bias = new Float64Array(nItems);
  for (let i = 0; i < nItems; i++) bias[i] = BIAS_STD * rngFactors.normal();

  const rows: InterRow[] = [];
  const logits = new Float64Array(nItems);
  const keys = new Float64Array(nItems);
  const scale = 1 / (Math.sqrt(k) * TAU); // u·v/√k ~ N(0, 1)
  const minPerUser = Math.min(3, nItems);
  for (let u = 0; u < nUsers; u++) {
    for (let i = 0; i < nItems; i++) {
      let dot = 0;
      for (let j = 0; j < k; j++) dot += U[u * k + j] * V[i * k + j];
      logits[i] = dot * scale + bias[i];
      // Gumbel top-n = sampling n items without replacement with probability ∝ exp(logit).
      keys[i] = logits[i] - Math.log(-Math.log(rngChoice.next() || Number.MIN_VALUE));
    }
    const n = Math.max(minPerUser, Math.min(nItems, Math.round(mean * Math.exp(0.5 * rngChoice.normal() - 0.125))));
    const chosen = rngChoice.shuffle(topN(keys, n));
    // Stochastic rounding keeps the split ~80/10/10 even for users with few items.
    let nTest = Math.floor(0.1 * n + rngChoice.next());
    let nVal = Math.floor(0.1 * n + rngChoice.next());
    while (nTest + nVal > n - 1) {
      if (nVal >= nTest) nVal--;
      else nTest--;
    }
    for (let r = 0; r < n; r++) {
      const item = chosen[r];
      const x = r < nTest ? 2 : r < nTest + nVal ? 1 : 0;
      rows.push({ user: u, item, x, rating: Math.min(5, Math.max(1, Math.round(3 + logits[item] / 2))) });
    }
  }
  ensureSplits(rows);

  const interFile = join(opts.dir, `${name}.inter`);
  writeInter(interFile, rows, { crlf: opts.crlf, extraColumns: opts.extraColumns });

  mods.forEach((m, mi) => {
    const rng = new Rng((seed + 0x85ebca6b * (mi + 1)) >>> 0);
    const signal = m.signal ?? 0.7;
    const W = normals(rng, k * m.dim);
    const wScale = 1 / Math.sqrt(k); // v·W[:, d] ~ N(0, 1)
    const x = new Float32Array(nItems * m.dim);
    for (let i = 0; i < nItems; i++) {
      for (let d = 0; d < m.dim; d++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += V[i * k + j] * W[j * m.dim + d];
        x[i * m.dim + d] = signal * s * wScale + (1 - signal) * rng.normal();
      }
    }
    writeNpy(join(opts.dir, `${m.name}_feat.npy`), x, [nItems, m.dim], dtype);
  });

  return { dir: opts.dir, interFile, interactions: rows.length };
}

/** Write a `.inter` TSV (header userID, itemID[, rating], x_label) atomically. */
function writeInter(path: string, rows: InterRow[], opts: { crlf?: boolean; extraColumns?: boolean } = {}): void {
  const eol = opts.crlf ? '\r\n' : '\n';
  const extra = opts.extraColumns === true;
  const lines = [extra ? 'userID\titemID\trating\tx_label' : 'userID\titemID\tx_label'];
  for (const r of rows) {
    lines.push(extra ? `${r.user}\t${r.item}\t${r.rating ?? 1}\t${r.x}` : `${r.user}\t${r.item}\t${r.x}`);
  }
  writeFileAtomic(path, Buffer.from(lines.join(eol) + eol, 'utf8'));
}

function checkOptions(name: string, users: number, items: number, k: number, mean: number, mods: SyntheticModality[]): void {
  const posInt = (v: number, what: string, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`synthetic: ${what} must be an integer >= ${min}, got ${v}`);
  };
  posInt(users, 'users');
  posInt(items, 'items', 3);
  posInt(k, 'latentDim');
  if (!(mean > 0)) throw new RangeError(`synthetic: interactionsPerUser must be > 0, got ${mean}`);
  if (!/^[\w.-]+$/.test(name)) throw new RangeError(`synthetic: bad dataset name "${name}"`);
  const seen = new Set<string>();
  for (const m of mods) {
    if (!/^[\w-]+$/.test(m.name) || seen.has(m.name)) throw new RangeError(`synthetic: bad or duplicate modality name "${m.name}"`);
    seen.add(m.name);
    posInt(m.dim, `modality ${m.name} dim`);
    const s = m.signal ?? 0.7;
    if (!(s >= 0 && s <= 1)) throw new RangeError(`synthetic: modality ${m.name} signal must be in [0, 1], got ${s}`);
  }
}

/** A stale .inter or feature file would make the folder a different (or invalid) dataset. */
function refuseToMix(dir: string, name: string, mods: SyntheticModality[]): void {
  if (!existsSync(dir)) return;
  const ours = new Set([`${name}.inter`, ...mods.map((m) => `${m.name}_feat.npy`)]);
  const foreign = readdirSync(dir).filter((f) => (f.endsWith('.inter') || f.endsWith('_feat.npy')) && !ours.has(f));
  if (foreign.length) {
    throw new Error(`synthetic: ${dir} already holds other dataset files (${foreign.join(', ')}); use an empty folder`);
  }
}

/** Guarantee non-empty validation and test splits overall (only matters for tiny configs). */
function ensureSplits(rows: InterRow[]): void {
  for (const label of [1, 2]) {
    if (rows.some((r) => r.x === label)) continue;
    // Take a train row from the user with the most train rows, so that user keeps >= 1.
    const trainCount = new Map<number, number>();
    for (const r of rows) if (r.x === 0) trainCount.set(r.user, (trainCount.get(r.user) ?? 0) + 1);
    let best = -1;
    let bestN = 1;
    for (const [u, n] of trainCount) if (n > bestN) [best, bestN] = [u, n];
    if (best < 0) throw new RangeError('synthetic: too few interactions for non-empty validation and test splits');
    const row = rows.find((r) => r.user === best && r.x === 0)!;
    row.x = label;
  }
}

function normals(rng: Rng, n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** Indices of the n largest keys, in descending key order (min-heap of size n: O(len log n)). */
function topN(keys: Float64Array, n: number): Int32Array {
  const heap = new Int32Array(n);
  let size = 0;
  const less = (a: number, b: number) => keys[heap[a]] < keys[heap[b]];
  const swap = (a: number, b: number) => {
    const t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
  };
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && less(l, m)) m = l;
      if (r < size && less(r, m)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  for (let i = 0; i < keys.length; i++) {
    if (size < n) {
      heap[size] = i;
      let c = size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!less(c, p)) break;
        swap(c, p);
        c = p;
      }
    } else if (keys[i] > keys[heap[0]]) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return Int32Array.from(heap).sort((a, b) => keys[b] - keys[a]);
}
