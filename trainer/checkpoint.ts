/**
 * Checkpoints in the tfjs weights format: `model.json` (our metadata plus a tfjs
 * `weightsManifest`) and `weights.bin` (the float32 arrays back to back, little-endian).
 * A checkpoint folder is written whole under a temporary name and renamed into place, so
 * a reader (or a crash) sees the previous complete checkpoint or the new one, never a mix.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncPath, pidAlive, writeFileAtomic } from '../core/atomic.js';

export const CHECKPOINT_FORMAT = 'promptmm-checkpoint/1';
/** The file that holds a checkpoint's metadata and weights manifest; its presence marks a checkpoint. */
export const CHECKPOINT_FILE = 'model.json';

export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
}

export interface CheckpointFile<M> {
  format: string;
  meta: M;
  weightsManifest: { paths: string[]; weights: WeightSpec[] }[];
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Extra files (curves, plots) written into the checkpoint folder with it. */
export type ExtraFiles = Record<string, string | Uint8Array>;

export function saveCheckpoint<M>(dir: string, meta: M, arrays: NamedArray[], extra: ExtraFiles = {}): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  removeStale(parent, basename(dir));
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    let bytes = 0;
    for (const a of arrays) {
      const n = a.shape.reduce((x, y) => x * y, 1);
      if (n !== a.data.length) throw new CheckpointError(`weight ${a.name}: shape ${a.shape} does not match ${a.data.length} values`);
      bytes += a.data.byteLength;
    }
    const bin = new Uint8Array(bytes);
    let off = 0;
    for (const a of arrays) {
      bin.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), off);
      off += a.data.byteLength;
    }
    writeFileAtomic(join(tmp, 'weights.bin'), bin);
    for (const [name, content] of Object.entries(extra)) {
      writeFileAtomic(join(tmp, name), typeof content === 'string' ? Buffer.from(content) : content);
    }
    const file: CheckpointFile<M> = {
      format: CHECKPOINT_FORMAT,
      meta,
      weightsManifest: [{ paths: ['weights.bin'], weights: arrays.map((a) => ({ name: a.name, shape: a.shape, dtype: 'float32' })) }],
    };
    writeFileAtomic(join(tmp, CHECKPOINT_FILE), Buffer.from(JSON.stringify(file, null, 2)));
    fsyncPath(tmp);
    // Swap: the old folder moves aside first, so at every instant one complete checkpoint exists.
    const old = `${dir}.old-${process.pid}`;
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
    fsyncPath(parent);
    rmSync(old, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Replaces one auxiliary file inside an existing checkpoint (e.g. the final training curve). */
export function updateCheckpointFile(dir: string, name: string, content: string | Uint8Array): void {
  writeFileAtomic(join(dir, name), typeof content === 'string' ? Buffer.from(content) : content);
}

/** Rewrites the metadata of an existing checkpoint (atomically; the weights stay as they are). */
export function updateCheckpointMeta<M>(dir: string, update: (meta: M) => M): void {
  const path = join(dir, CHECKPOINT_FILE);
  const file = JSON.parse(readFileSync(path, 'utf8')) as CheckpointFile<M>;
  file.meta = update(file.meta);
  writeFileAtomic(path, Buffer.from(JSON.stringify(file, null, 2)));
}

/** Whether `dir` holds a checkpoint. */
export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_FILE));
}

export interface LoadedCheckpoint<M> {
  dir: string;
  meta: M;
  arrays: Map<string, NamedArray>;
}

export function loadCheckpoint<M>(dir: string): LoadedCheckpoint<M> {
  removeStale(dirname(dir), basename(dir));
  const manifestPath = join(dir, CHECKPOINT_FILE);
  if (!existsSync(manifestPath)) throw new CheckpointError(`no checkpoint at ${dir} (${CHECKPOINT_FILE} missing)`);
  let file: CheckpointFile<M>;
  try {
    file = JSON.parse(readFileSync(manifestPath, 'utf8')) as CheckpointFile<M>;
  } catch (err) {
    throw new CheckpointError(`${manifestPath}: not valid JSON (${(err as Error).message})`);
  }
  if (file.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${manifestPath}: format "${file.format}" is not ${CHECKPOINT_FORMAT}`);
  }
  const arrays = new Map<string, NamedArray>();
  for (const group of file.weightsManifest ?? []) {
    const bins = group.paths.map((p) => {
      const path = join(dir, p);
      if (!existsSync(path)) throw new CheckpointError(`${path}: missing weights file`);
      return readFileSync(path);
    });
    const buf = Buffer.concat(bins);
    const expected = group.weights.reduce((s, w) => s + 4 * w.shape.reduce((a, b) => a * b, 1), 0);
    if (buf.length !== expected) {
      throw new CheckpointError(`${join(dir, group.paths[0])}: ${buf.length} bytes, manifest expects ${expected}`);
    }
    let off = 0;
    for (const w of group.weights) {
      if (w.dtype !== 'float32') throw new CheckpointError(`${manifestPath}: weight ${w.name} has dtype ${w.dtype}`);
      const n = w.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      new Uint8Array(data.buffer).set(buf.subarray(off, off + 4 * n));
      off += 4 * n;
      arrays.set(w.name, { name: w.name, shape: w.shape, data });
    }
  }
  return { dir, meta: file.meta, arrays };
}

export function requireArray(ckpt: LoadedCheckpoint<unknown>, name: string, shape?: number[]): NamedArray {
  const a = ckpt.arrays.get(name);
  if (!a) throw new CheckpointError(`${ckpt.dir}: weight "${name}" missing`);
  if (shape && (a.shape.length !== shape.length || a.shape.some((s, i) => s !== shape[i]))) {
    throw new CheckpointError(`${ckpt.dir}: weight "${name}" has shape [${a.shape}], expected [${shape}]`);
  }
  return a;
}

/**
 * Leftovers of a writer that died mid-save: its .tmp- folder is incomplete and goes; its
 * .old- folder is the last complete checkpoint, restored if the swap did not finish.
 */
function removeStale(parent: string, base: string): void {
  if (!existsSync(parent)) return;
  const target = join(parent, base);
  for (const name of readdirSync(parent)) {
    const m = name.match(/^(.*)\.(tmp|old)-(\d+)$/);
    if (!m || m[1] !== base || pidAlive(Number(m[3]))) continue;
    if (m[2] === 'old' && !existsSync(target)) renameSync(join(parent, name), target);
    else rmSync(join(parent, name), { recursive: true, force: true });
  }
}
