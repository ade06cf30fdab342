/**
 * KDSR's teacher side (Hu, Liu, Li, Kan, ECIR 2024; code github HoldenHu/KDSR,
 * `teacher_generate_cor` / `teacher_generate_cor_code`): from each modality's item features,
 * (a) the holistic correlation r_ij = cos(m_i, m_j) and (b) the dissected correlation code: the
 * feature vector split into D sub-vectors, the D sub-vector cosines of a pair quantized to one of
 * x codes by a trained codebook. Computed once per run from the features alone (no tfjs), cached
 * beside the checkpoint (cacheDir), never needed at serving time.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic.js';
import { Rng } from '../../core/rng.js';
import type { Modality } from '../../data/dataset.js';

export interface KdsrTeacherOptions {
  /** D: sub-vectors per feature vector */
  subvectors: number;
  /** x: codebook size (≤ 255: codes are bytes) */
  codes: number;
  quantizer: 'vq' | 'kmeans';
}

/** One modality's teacher statistics. */
export interface ModalityStats {
  name: string;
  /** the feature vectors scaled to unit length, [nItems, dim] */
  unit: Float32Array;
  /** each of the D sub-vectors scaled to unit length, [nItems, dim] */
  sub: Float32Array;
  dim: number;
  /** [codes, D] */
  codebook: Float32Array;
  /** the code of every pair, [nItems × nItems] (row-major), when the catalog is small enough; else assigned on demand */
  codes: Uint8Array | null;
}

/** Catalogs up to this many items keep the N×N code table (16M bytes); larger ones assign codes per pair as needed. */
export const CODE_TABLE_MAX_ITEMS = 4096;
/** Pairs the codebook is trained on. */
const TRAIN_PAIRS = 100_000;

export class KdsrTeacher {
  constructor(
    readonly nItems: number,
    readonly opts: KdsrTeacherOptions,
    readonly modalities: ModalityStats[],
  ) {}

  /** The holistic correlation of items i and j in modality m. */
  holistic(m: number, i: number, j: number): number {
    const s = this.modalities[m];
    return dot(s.unit, i * s.dim, s.unit, j * s.dim, s.dim);
  }

  /** The dissected correlation code of items i and j in modality m. */
  code(m: number, i: number, j: number): number {
    const s = this.modalities[m];
    if (s.codes) return s.codes[i * this.nItems + j];
    const v = new Float32Array(this.opts.subvectors);
    correlationVector(s, i, j, this.opts.subvectors, v);
    return nearest(s.codebook, v, this.opts.codes, this.opts.subvectors);
  }
}

/** The rule for D: every modality's dimension must be divisible by it (the error names the file). */
export function checkSubvectors(modalities: readonly Modality[], D: number): void {
  for (const m of modalities) {
    if (m.dim % D !== 0) {
      throw new Error(`--seq-kd kdsr: modality "${m.name}" (${m.file}) has dimension ${m.dim}, not divisible by --kdsr-subvectors ${D}; choose a D that divides every modality's dimension (${modalities.map((x) => `${x.name} ${x.dim}`).join(', ')})`);
    }
  }
}

/**
 * The teacher statistics of `modalities`, from `cacheDir` when it holds those of the same
 * features and options, else computed (codebook training on sampled pairs, then every pair's code)
 * and written there.
 */
export function kdsrTeacher(modalities: readonly Modality[], nItems: number, opts: KdsrTeacherOptions, featuresHash: string, cacheDir?: string, log?: (msg: string, o?: object) => void): KdsrTeacher {
  if (modalities.length === 0) throw new Error('--seq-kd kdsr needs item features: the dataset has no feature files (<modality>_feat.npy, dataset.json or --feature)');
  checkSubvectors(modalities, opts.subvectors);
  const key = JSON.stringify({ featuresHash, nItems, ...opts, modalities: modalities.map((m) => [m.name, m.dim]), format: 1 });
  const cached = cacheDir ? readCache(cacheDir, key, modalities, nItems, opts) : null;
  const stats = modalities.map((m, k) => {
    const { unit, sub } = normalise(m, nItems, opts.subvectors);
    const c = cached?.[k];
    if (c) return { name: m.name, unit, sub, dim: m.dim, codebook: c.codebook, codes: c.codes };
    const t0 = performance.now();
    const partial = { name: m.name, unit, sub, dim: m.dim, codebook: new Float32Array(0), codes: null } as ModalityStats;
    partial.codebook = trainCodebook(partial, nItems, opts, new Rng(7 + k));
    if (nItems <= CODE_TABLE_MAX_ITEMS) partial.codes = codeTable(partial, nItems, opts);
    log?.('kdsr teacher statistics computed', { modality: m.name, codes: opts.codes, subvectors: opts.subvectors, quantizer: opts.quantizer, seconds: Math.round((performance.now() - t0) / 100) / 10 });
    return partial;
  });
  if (cacheDir && !cached) writeCache(cacheDir, key, stats);
  else if (cached) log?.('kdsr teacher statistics read from the cache', { dir: cacheDir });
  return new KdsrTeacher(nItems, opts, stats);
}

function normalise(m: Modality, n: number, D: number): { unit: Float32Array; sub: Float32Array } {
  const d = m.dim;
  const w = d / D;
  const unit = m.data.slice(0, n * d);
  const sub = m.data.slice(0, n * d);
  for (let i = 0; i < n; i++) {
    scale(unit, i * d, d);
    for (let k = 0; k < D; k++) scale(sub, i * d + k * w, w);
  }
  return { unit, sub };
}

/** Scales a[off..off+len) to unit length (a zero vector stays zero: its cosines are 0). */
function scale(a: Float32Array, off: number, len: number): void {
  let s = 0;
  for (let t = 0; t < len; t++) s += a[off + t] * a[off + t];
  if (s === 0) return;
  const f = 1 / Math.sqrt(s);
  for (let t = 0; t < len; t++) a[off + t] *= f;
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, len: number): number {
  let s = 0;
  for (let t = 0; t < len; t++) s += a[ao + t] * b[bo + t];
  return s;
}

/** The D sub-vector cosines of items i and j. */
export function correlationVector(s: ModalityStats, i: number, j: number, D: number, out: Float32Array): void {
  const w = s.dim / D;
  for (let k = 0; k < D; k++) out[k] = dot(s.sub, i * s.dim + k * w, s.sub, j * s.dim + k * w, w);
}

/** The index of the codeword nearest to v (squared Euclidean distance; ties: the lower index). */
export function nearest(codebook: Float32Array, v: Float32Array, codes: number, D: number): number {
  let best = 0;
  let bestD = Infinity;
  for (let c = 0; c < codes; c++) {
    let dist = 0;
    for (let k = 0; k < D; k++) {
      const e = v[k] - codebook[c * D + k];
      dist += e * e;
    }
    if (dist < bestD) {
      bestD = dist;
      best = c;
    }
  }
  return best;
}

/**
 * The codebook, trained on sampled pairs' correlation vectors: `vq`, online vector quantization
 * (mini-batches, each codeword moving toward its points by 1/its count: scikit-learn's
 * MiniBatchKMeans, which KDSR's code runs), or `kmeans`, Lloyd's iterations from a k-means++ start.
 */
function trainCodebook(s: ModalityStats, n: number, o: KdsrTeacherOptions, rng: Rng): Float32Array {
  const D = o.subvectors;
  const P = Math.min(TRAIN_PAIRS, n * n);
  const X = new Float32Array(P * D);
  const v = new Float32Array(D);
  for (let p = 0; p < P; p++) {
    correlationVector(s, rng.int(n), rng.int(n), D, v);
    X.set(v, p * D);
  }
  const K = o.codes;
  const C = new Float32Array(K * D);
  const pick = (p: number, c: number) => C.set(X.subarray(p * D, (p + 1) * D), c * D);
  if (o.quantizer === 'vq') {
    for (let c = 0; c < K; c++) pick(rng.int(P), c);
    const count = new Float64Array(K);
    for (let pass = 0; pass < 3; pass++) {
      for (let p = 0; p < P; p++) {
        const q = rng.int(P);
        const x = X.subarray(q * D, (q + 1) * D);
        const c = nearest(C, x, K, D);
        const eta = 1 / ++count[c];
        for (let k = 0; k < D; k++) C[c * D + k] += eta * (x[k] - C[c * D + k]);
      }
    }
    return C;
  }
  // k-means++ start on a subsample, then Lloyd on all sampled pairs
  const dist = new Float64Array(P).fill(Infinity);
  pick(rng.int(P), 0);
  for (let c = 1; c < K; c++) {
    let total = 0;
    for (let p = 0; p < P; p++) {
      let e2 = 0;
      for (let k = 0; k < D; k++) {
        const e = X[p * D + k] - C[(c - 1) * D + k];
        e2 += e * e;
      }
      if (e2 < dist[p]) dist[p] = e2;
      total += dist[p];
    }
    let u = rng.next() * total;
    let chosen = P - 1;
    for (let p = 0; p < P; p++) {
      u -= dist[p];
      if (u <= 0) {
        chosen = p;
        break;
      }
    }
    pick(chosen, c);
  }
  const assign = new Int32Array(P);
  for (let it = 0; it < 15; it++) {
    const sum = new Float64Array(K * D);
    const cnt = new Float64Array(K);
    let moved = 0;
    for (let p = 0; p < P; p++) {
      const c = nearest(C, X.subarray(p * D, (p + 1) * D), K, D);
      if (c !== assign[p]) moved++;
      assign[p] = c;
      cnt[c]++;
      for (let k = 0; k < D; k++) sum[c * D + k] += X[p * D + k];
    }
    for (let c = 0; c < K; c++) if (cnt[c] > 0) for (let k = 0; k < D; k++) C[c * D + k] = sum[c * D + k] / cnt[c];
    if (it > 0 && moved === 0) break;
  }
  return C;
}

/** Every pair's code (symmetric: computed for i ≤ j). */
function codeTable(s: ModalityStats, n: number, o: KdsrTeacherOptions): Uint8Array {
  const t = new Uint8Array(n * n);
  const v = new Float32Array(o.subvectors);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      correlationVector(s, i, j, o.subvectors, v);
      const c = nearest(s.codebook, v, o.codes, o.subvectors);
      t[i * n + j] = c;
      t[j * n + i] = c;
    }
  }
  return t;
}

function cacheFile(dir: string, k: number, what: 'codebook' | 'codes'): string {
  return join(dir, `${k}.${what}.bin`);
}

function readCache(dir: string, key: string, mods: readonly Modality[], n: number, o: KdsrTeacherOptions): { codebook: Float32Array; codes: Uint8Array | null }[] | null {
  const metaFile = join(dir, 'meta.json');
  if (!existsSync(metaFile)) return null;
  try {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as { key: string };
    if (meta.key !== key) return null;
    return mods.map((_, k) => {
      const cb = readFileSync(cacheFile(dir, k, 'codebook'));
      if (cb.length !== o.codes * o.subvectors * 4) throw new Error('codebook size');
      const codebook = new Float32Array(cb.buffer.slice(cb.byteOffset, cb.byteOffset + cb.length));
      let codes: Uint8Array | null = null;
      if (n <= CODE_TABLE_MAX_ITEMS) {
        const c = readFileSync(cacheFile(dir, k, 'codes'));
        if (c.length !== n * n) throw new Error('code table size');
        codes = new Uint8Array(c);
        if (codes.some((x) => x >= o.codes)) throw new Error('code out of range');
      }
      return { codebook, codes };
    });
  } catch {
    return null; // a damaged or partial cache is recomputed
  }
}

function writeCache(dir: string, key: string, stats: ModalityStats[]): void {
  mkdirSync(dir, { recursive: true });
  stats.forEach((s, k) => {
    writeFileAtomic(cacheFile(dir, k, 'codebook'), new Uint8Array(s.codebook.buffer, s.codebook.byteOffset, s.codebook.byteLength));
    if (s.codes) writeFileAtomic(cacheFile(dir, k, 'codes'), s.codes);
  });
  // the key last: a crash before it leaves a cache that is not read
  writeFileAtomic(join(dir, 'meta.json'), Buffer.from(JSON.stringify({ key, modalities: stats.map((s) => s.name), createdAt: new Date().toISOString() })));
}
