/**
 * The model repository on local disk: models/<name>/<version>/ bundles. Versions are committed
 * by renaming a complete temporary folder into place, so a folder named by an integer either
 * holds a whole bundle or does not exist. This module is the one interface the exporter and
 * the server use to reach it (a shared store for replicas would implement the same calls).
 */
import { closeSync, createReadStream, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BUNDLE_FILES, SEQUENCE_FILES, BUNDLE_FORMAT, ITEM_ENCODER_FILE, type Manifest } from './bundle-format.js';

export class RepositoryError extends Error {
  override readonly name = 'RepositoryError';
}

const VERSION_RE = /^[1-9]\d*$/;
export const TMP_PREFIX = '.tmp-export-';

export function modelDir(repo: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new RepositoryError(`model name "${name}" is not valid (letters, digits, '.', '_', '-'; not starting with a dot)`);
  }
  return join(resolve(repo), name);
}

export function versionDir(repo: string, name: string, version: number): string {
  return join(modelDir(repo, name), String(version));
}

/** Fails with a clear message when `path` exists but is not a folder. */
export function assertFolder(path: string, what: string): void {
  if (existsSync(path) && !statSync(path).isDirectory()) throw new RepositoryError(`${what} ${path} is a file, not a folder`);
}

/** Committed versions (integer folders with a manifest), ascending. */
export function listVersions(repo: string, name: string): number[] {
  const dir = modelDir(repo, name);
  assertFolder(resolve(repo), 'model repository');
  if (!existsSync(dir)) return [];
  assertFolder(dir, 'model folder');
  return readdirSync(dir)
    .filter((e) => VERSION_RE.test(e) && existsSync(join(dir, e, BUNDLE_FILES.manifest)))
    .map(Number)
    .sort((a, b) => a - b);
}

/** Model names in the repository that have at least one version or checkpoint. */
export function listModels(repo: string): string[] {
  const root = resolve(repo);
  assertFolder(root, 'model repository');
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

export function readManifest(dir: string): Manifest {
  const file = join(dir, BUNDLE_FILES.manifest);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RepositoryError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw new RepositoryError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (m?.format !== BUNDLE_FORMAT) throw new RepositoryError(`${file}: format is ${JSON.stringify(m?.format)}, expected ${BUNDLE_FORMAT}`);
  for (const f of ['version', 'dim'] as const) {
    if (!Number.isInteger(m[f]) || m[f] < 1) throw new RepositoryError(`${file}: field "${f}" must be a positive integer`);
  }
  if (!m.counts || !Number.isInteger(m.counts.users) || !Number.isInteger(m.counts.items)) throw new RepositoryError(`${file}: field "counts" is missing or malformed`);
  if (!m.files || typeof m.files !== 'object') throw new RepositoryError(`${file}: field "files" is missing`);
  return m;
}

/** sha256 of a file, read in blocks (bundles of large catalogs are hundreds of MB). */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

export interface VerifyResult {
  ok: boolean;
  manifest: Manifest | null;
  problems: string[];
}

/** sha256 of a file, streamed: the server verifies a new version without blocking its requests. */
export async function sha256FileAsync(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Checks the manifest and every file's size and sha256; lists every problem found. Streams the
 * hashing so a serving process verifies a new version without blocking its requests.
 */
export async function verifyBundle(dir: string): Promise<VerifyResult> {
  let manifest: Manifest;
  try {
    manifest = readManifest(dir);
  } catch (err) {
    return { ok: false, manifest: null, problems: [(err as Error).message] };
  }
  const problems: string[] = [];
  for (const required of [...Object.values(BUNDLE_FILES), ...(manifest.model === 'sasrec' ? Object.values(SEQUENCE_FILES) : []), ...(manifest.itemEncoder ? [ITEM_ENCODER_FILE] : [])]) {
    if (required !== BUNDLE_FILES.manifest && !(required in manifest.files)) problems.push(`${required}: not listed in the manifest`);
  }
  for (const [name, entry] of Object.entries(manifest.files)) {
    const path = join(dir, name);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      problems.push(`${name}: missing`);
      continue;
    }
    if (size !== entry.bytes) {
      problems.push(`${name}: ${size} bytes, manifest says ${entry.bytes}`);
      continue;
    }
    const sum = await sha256FileAsync(path);
    if (sum !== entry.sha256) problems.push(`${name}: sha256 ${sum.slice(0, 12)}…, manifest says ${entry.sha256.slice(0, 12)}…`);
  }
  return { ok: problems.length === 0, manifest, problems };
}
