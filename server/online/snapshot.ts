/**
 * Snapshots of a served version's online state at a log position, so that a restart of the same
 * version loads it and replays only the log records after it. The file format, capture, checks
 * and restore. A snapshot belongs to one bundle (version and file checksums) and one log folder:
 * another version's vectors live in another space, and another log's positions mean other records.
 *
 * File: "PMMSNAP1" | u32 header bytes | header JSON (space-padded to a multiple of 4) | sections,
 * little-endian int32/float32 arrays back to back, in the header's order; the header holds the
 * body's CRC32. Written whole to a temporary file, fsynced and renamed (core/atomic.ts).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { fsyncPath, pidAlive, writeFileAtomic } from '../../core/atomic.js';
import type { Manifest } from '../../repository/bundle-format.js';
import type { ServingModel } from '../serving/serving-model.js';
import type { VersionState } from './version-state.js';

export const SNAPSHOT_FORMAT = 'promptmm-online-snapshot/1';
/** The default folder, in the model's folder beside the log: models/NAME/online-state/. */
export const SNAPSHOT_FOLDER = 'online-state';
const MAGIC = Buffer.from('PMMSNAP1');
const SECTIONS = ['userRows', 'userVectors', 'seenRows', 'seenOffsets', 'seenItems', 'onlineVectors', 'onlineSeenOffsets', 'onlineSeenItems', 'itemRows', 'itemVectors'] as const;
type SectionName = (typeof SECTIONS)[number];
const FLOAT: ReadonlySet<SectionName> = new Set(['userVectors', 'onlineVectors', 'itemVectors']);

export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}

interface Header {
  format: typeof SNAPSHOT_FORMAT;
  model: string;
  version: number;
  /** fingerprint of the bundle's files (bundleFingerprint) */
  bundle: string;
  /** absolute path of the log folder whose positions these are */
  logDir: string;
  position: number;
  dim: number;
  items: number;
  bundleUsers: number;
  /** online-only users, least recently updated first */
  onlineIds: string[];
  crc: number;
  lengths: Record<SectionName, number>;
  writtenAt: string;
}

export interface Snapshot {
  header: Header;
  sections: Record<SectionName, Int32Array | Float32Array>;
}

export const snapshotPath = (dir: string, version: number) => join(dir, `v${version}.snapshot`);

/** Identifies a bundle's content (a re-export of the same version number is another bundle). */
export function bundleFingerprint(manifest: Manifest): string {
  return createHash('sha256').update(`${manifest.name}\n${manifest.version}\n${JSON.stringify(manifest.files)}`).digest('hex');
}

/** A snapshot before serialization: what captureSnapshot copied, ready for serializeSnapshot (on a worker or here). */
export interface SnapshotParts {
  header: Omit<Header, 'crc' | 'lengths' | 'format'>;
  sections: Record<SectionName, Int32Array | Float32Array>;
}

/**
 * Copies of rows (a vector, and for users the seen items) in flat arrays that grow: one object
 * per row would cost more memory and collection than the row itself. A row copied again (it
 * changed meanwhile) takes a new slot; the latest one counts.
 */
class RowCopies {
  private vectors: Float32Array;
  private seen = new Int32Array(1024);
  private seenEnd = 0;
  private starts: Int32Array;
  /** seen items per slot, -1: none */
  private lengths: Int32Array;
  private count = 0;
  readonly slots = new Map<number, number>();

  constructor(
    private readonly d: number,
    hint: number,
  ) {
    this.vectors = new Float32Array(Math.max(1, hint) * d);
    this.starts = new Int32Array(Math.max(1, hint));
    this.lengths = new Int32Array(Math.max(1, hint));
  }

  copy(r: number, table: Float32Array, seen?: Set<number>): void {
    const d = this.d;
    const slot = this.count++;
    if (slot >= this.starts.length) {
      const grow = <T extends Int32Array | Float32Array>(a: T, n: number): T => {
        const b = new (a.constructor as new (n: number) => T)(n);
        b.set(a);
        return b;
      };
      this.vectors = grow(this.vectors, this.vectors.length * 2);
      this.starts = grow(this.starts, this.starts.length * 2);
      this.lengths = grow(this.lengths, this.lengths.length * 2);
    }
    this.vectors.set(table.subarray(r * d, (r + 1) * d), slot * d);
    this.starts[slot] = this.seenEnd;
    this.lengths[slot] = seen ? seen.size : -1;
    if (seen) {
      if (this.seenEnd + seen.size > this.seen.length) {
        const b = new Int32Array(Math.max(this.seen.length * 2, this.seenEnd + seen.size));
        b.set(this.seen.subarray(0, this.seenEnd));
        this.seen = b;
      }
      for (const i of seen) this.seen[this.seenEnd++] = i;
    }
    this.slots.set(r, slot);
  }

  vector(r: number): Float32Array {
    const slot = this.slots.get(r)!;
    return this.vectors.subarray(slot * this.d, (slot + 1) * this.d);
  }

  /** The row's seen items as copied, or null when it had none. */
  seenOf(r: number): Int32Array | null {
    const slot = this.slots.get(r)!;
    return this.lengths[slot] < 0 ? null : this.seen.subarray(this.starts[slot], this.starts[slot] + this.lengths[slot]);
  }
}

/**
 * The steps of copying a version's online state; yields where the event loop may run. Rows and
 * items changed while it runs are copied again in the last step, which is synchronous and reads
 * the position and the online users' order, so the copy is the state at that one position.
 */
function* captureSteps(st: VersionState, logDir: string, slice: number): Generator<void, SnapshotParts> {
  const m = st.m;
  const d = m.dim;
  const nb = m.bundleUsers;
  const watch = st.watch();
  let users: RowCopies;
  let items: RowCopies;
  try {
    const rows: number[] = [];
    for (let r = 0; r < nb; r++) if (st.movedUsers[r]) rows.push(r);
    for (const r of m.extraSeen.keys()) if (r < nb && !st.movedUsers[r]) rows.push(r);
    for (const [r] of st.users.entries()) rows.push(r);
    const itemRows: number[] = [];
    for (let i = 0; i < m.nItems; i++) if (st.movedItems[i]) itemRows.push(i);
    users = new RowCopies(d, rows.length);
    items = new RowCopies(d, itemRows.length);
    yield;
    for (let k = 0; k < rows.length; k++) {
      users.copy(rows[k], m.userVectors, m.extraSeen.get(rows[k]));
      if ((k + 1) % slice === 0) yield;
    }
    for (let k = 0; k < itemRows.length; k++) {
      items.copy(itemRows[k], m.itemVectors);
      if ((k + 1) % slice === 0) yield;
    }
    // The last step, synchronous: what changed meanwhile, then the position and the order it holds for.
    for (const r of watch.users) users.copy(r, m.userVectors, m.extraSeen.get(r));
    for (const i of watch.items) items.copy(i, m.itemVectors);
  } finally {
    st.unwatch(watch);
  }
  const position = m.appliedPosition;
  // Items with the position (a PUT applied while the copy is written would add one the log up to `position` does not have).
  const nItems = m.nItems;
  const online = [...st.users.entries()];
  // What changes after this is the next snapshot's (a failed write sets `changed` again).
  st.changed = false;
  st.sinceSnapshot = 0;
  yield;

  // From here on only the private copies are read.
  const bundleRows = [...users.slots.keys()].filter((r) => r < nb).sort((a, b) => a - b);
  const seenRows = bundleRows.filter((r) => users.seenOf(r));
  let nSeen = 0;
  for (const r of seenRows) nSeen += users.seenOf(r)!.length;
  let nOnlineSeen = 0;
  for (const [r] of online) nOnlineSeen += users.seenOf(r)?.length ?? 0;
  const sections: SnapshotParts['sections'] = {
    userRows: Int32Array.from(bundleRows),
    userVectors: new Float32Array(bundleRows.length * d),
    seenRows: Int32Array.from(seenRows),
    seenOffsets: new Int32Array(seenRows.length + 1),
    seenItems: new Int32Array(nSeen),
    onlineVectors: new Float32Array(online.length * d),
    onlineSeenOffsets: new Int32Array(online.length + 1),
    onlineSeenItems: new Int32Array(nOnlineSeen),
    itemRows: Int32Array.from([...items.slots.keys()].sort((a, b) => a - b)),
    itemVectors: new Float32Array(items.slots.size * d),
  };
  for (let k = 0; k < bundleRows.length; k++) {
    sections.userVectors.set(users.vector(bundleRows[k]), k * d);
    if ((k + 1) % slice === 0) yield;
  }
  let e = 0;
  for (let k = 0; k < seenRows.length; k++) {
    const seen = users.seenOf(seenRows[k])!;
    sections.seenItems.set(seen, e);
    e += seen.length;
    sections.seenOffsets[k + 1] = e;
    if ((k + 1) % slice === 0) yield;
  }
  e = 0;
  for (let k = 0; k < online.length; k++) {
    const r = online[k][0];
    const seen = users.seenOf(r);
    sections.onlineVectors.set(users.vector(r), k * d);
    if (seen) sections.onlineSeenItems.set(seen, e);
    e += seen?.length ?? 0;
    sections.onlineSeenOffsets[k + 1] = e;
    if ((k + 1) % slice === 0) yield;
  }
  sections.itemRows.forEach((i, k) => sections.itemVectors.set(items.vector(i), k * d));
  return {
    header: { model: m.name, version: m.version, bundle: bundleFingerprint(m.manifest), logDir: resolve(logDir), position, dim: d, items: nItems, bundleUsers: nb, onlineIds: online.map(([, id]) => id), writtenAt: new Date().toISOString() },
    sections,
  };
}

/** The version's online state now, in one synchronous step (shutdown, tests). */
export function captureSnapshotSync(st: VersionState, logDir: string): SnapshotParts {
  const steps = captureSteps(st, logDir, Infinity);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** The version's online state, copied `slice` rows at a time with `pause()` between (the event loop serves meanwhile); consistent at the position it records. */
export async function captureSnapshot(st: VersionState, logDir: string, pause: () => Promise<void>, slice = 2000): Promise<SnapshotParts> {
  const steps = captureSteps(st, logDir, slice);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await pause();
  }
}

/** The snapshot file's bytes. */
export function serializeSnapshot(parts: SnapshotParts): Buffer {
  const { sections } = parts;
  const body = Buffer.concat(SECTIONS.map((s) => Buffer.from(sections[s].buffer, sections[s].byteOffset, sections[s].byteLength)));
  const header: Header = {
    format: SNAPSHOT_FORMAT,
    ...parts.header,
    crc: crc32(body),
    lengths: Object.fromEntries(SECTIONS.map((s) => [s, sections[s].length])) as Record<SectionName, number>,
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((4 - ((MAGIC.length + 4 + Buffer.byteLength(json)) % 4)) % 4);
  const head = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(head);
  head.writeUInt32LE(Buffer.byteLength(json), MAGIC.length);
  return Buffer.concat([head, Buffer.from(json), body]);
}

/** captureSnapshotSync, serialized. */
export function encodeSnapshot(st: VersionState, logDir: string): Buffer {
  return serializeSnapshot(captureSnapshotSync(st, logDir));
}

/** Parses a snapshot file and checks its framing and CRC (not yet that it fits a model: see checkSnapshot). */
export function decodeSnapshot(buf: Buffer, file: string): Snapshot {
  const bad = (why: string) => new SnapshotError(`${file}: ${why}`);
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('not an online-state snapshot');
  const hl = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4 + hl;
  if (start > buf.length || start % 4) throw bad('header cut short');
  let header: Header;
  try {
    header = JSON.parse(buf.subarray(MAGIC.length + 4, start).toString('utf8')) as Header;
  } catch {
    throw bad('unreadable header');
  }
  if (header.format !== SNAPSHOT_FORMAT) throw bad(`format ${JSON.stringify(header.format)} is not ${SNAPSHOT_FORMAT}`);
  const body = buf.subarray(start);
  let total = 0;
  for (const s of SECTIONS) {
    const n = header.lengths?.[s];
    if (!Number.isSafeInteger(n) || n < 0) throw bad(`section ${s}: bad length`);
    total += n * 4;
  }
  if (total !== body.length) throw bad(`body is ${body.length} bytes where the header says ${total} (cut short or padded)`);
  if (crc32(body) !== header.crc) throw bad('checksum mismatch (damaged)');
  // Copied out: the sections must be 4-byte aligned, which a Buffer's slice of a pooled allocation need not be.
  const aligned = new Uint8Array(body);
  const sections = {} as Snapshot['sections'];
  let off = 0;
  for (const s of SECTIONS) {
    const n = header.lengths[s];
    sections[s] = FLOAT.has(s) ? new Float32Array(aligned.buffer, off, n) : new Int32Array(aligned.buffer, off, n);
    off += n * 4;
  }
  return { header, sections };
}

/**
 * Why the snapshot cannot be loaded into `m` with the log in `logDir` at `logPosition`, or null.
 * Every row, offset and value is checked before anything is changed.
 */
export function checkSnapshot(snap: Snapshot, m: ServingModel, logDir: string, logPosition: number, items: number = m.nItems): string | null {
  const h = snap.header;
  const s = snap.sections;
  if (h.model !== m.name || h.version !== m.version) return `it is of ${h.model} version ${h.version}, not ${m.name} version ${m.version}`;
  if (h.bundle !== bundleFingerprint(m.manifest)) return `it is of another bundle numbered ${h.version} (re-exported)`;
  if (h.logDir !== resolve(logDir)) return `it is of the log in ${h.logDir}, not ${resolve(logDir)}`;
  if (!Number.isSafeInteger(h.position) || h.position < m.appliedPosition) return `its log position ${h.position} is before the bundle's ${m.appliedPosition}`;
  if (h.position > logPosition) return `its log position ${h.position} is past the log's end ${logPosition} (the log was replaced or cut)`;
  // `items`: the bundle's plus those the log's puts up to its position add (re-applied before it is restored).
  if (h.dim !== m.dim || h.items !== items || h.bundleUsers !== m.bundleUsers) return 'its dimensions differ from the bundle\'s';
  const d = m.dim;
  const rowsOk = (a: Int32Array | Float32Array, n: number) => a.every((r) => r >= 0 && r < n);
  const csrOk = (off: Int32Array | Float32Array, rows: number, seen: Int32Array | Float32Array) =>
    off.length === rows + 1 && off[0] === 0 && off[rows] === seen.length && off.every((v, k) => k === 0 || v >= off[k - 1]) && rowsOk(seen, items);
  if (!rowsOk(s.userRows, m.bundleUsers) || s.userVectors.length !== s.userRows.length * d) return 'bad user rows';
  if (!rowsOk(s.seenRows, m.bundleUsers) || !csrOk(s.seenOffsets, s.seenRows.length, s.seenItems)) return 'bad seen items';
  if (!Array.isArray(h.onlineIds) || !h.onlineIds.every((id) => typeof id === 'string' && id.length > 0) || new Set(h.onlineIds).size !== h.onlineIds.length) return 'bad online user ids';
  if (h.onlineIds.some((id) => m.userIndex.has(id))) return 'an online user is a bundle user';
  if (s.onlineVectors.length !== h.onlineIds.length * d || !csrOk(s.onlineSeenOffsets, h.onlineIds.length, s.onlineSeenItems)) return 'bad online users';
  if (!rowsOk(s.itemRows, items) || s.itemVectors.length !== s.itemRows.length * d) return 'bad item rows';
  for (const v of [s.userVectors, s.onlineVectors, s.itemVectors]) if (!v.every(Number.isFinite)) return 'non-finite vector values';
  return null;
}

/**
 * Loads a checked snapshot into a version that has only its bundle: vectors, seen items, online
 * users (through `st.users`, so the cap and the update order hold), and marks them moved. Returns
 * the item rows that moved by at least `reindexMove` of their norm (to re-index).
 */
export function restoreSnapshot(snap: Snapshot, st: VersionState, reindexMove: number): number[] {
  const m = st.m;
  const d = m.dim;
  const s = snap.sections;
  s.userRows.forEach((r, k) => {
    m.userVectors.set(s.userVectors.subarray(k * d, (k + 1) * d), r * d);
    st.userMoved(r);
  });
  s.seenRows.forEach((r, k) => {
    for (let e = s.seenOffsets[k]; e < s.seenOffsets[k + 1]; e++) m.addSeen(r, s.seenItems[e]);
  });
  snap.header.onlineIds.forEach((id, k) => {
    const vector = s.onlineVectors.subarray(k * d, (k + 1) * d) as Float32Array;
    const { row } = st.users.rowFor(id, () => vector);
    for (let e = s.onlineSeenOffsets[k]; e < s.onlineSeenOffsets[k + 1]; e++) m.addSeen(row, s.onlineSeenItems[e]);
  });
  const reindex: number[] = [];
  s.itemRows.forEach((i, k) => {
    const v = s.itemVectors.subarray(k * d, (k + 1) * d);
    let n2 = 0;
    let moved2 = 0;
    for (let c = 0; c < d; c++) {
      n2 += m.itemVectors[i * d + c] ** 2;
      moved2 += (m.itemVectors[i * d + c] - v[c]) ** 2;
    }
    if (moved2 > 0 && Math.sqrt(moved2) >= reindexMove * Math.sqrt(n2)) reindex.push(i);
    else st.setDrift(i, Math.sqrt(moved2)); // (left where the bundle's index has it)
    m.itemVectors.set(v, i * d);
    st.itemMoved(i);
  });
  m.appliedPosition = snap.header.position;
  st.snapshotPosition = snap.header.position;
  st.changed = false;
  st.sinceSnapshot = 0;
  return reindex;
}

/** Reads `file` if there is one: the snapshot, or null (none); damaged or unreadable: SnapshotError. */
export function readSnapshot(file: string): Snapshot | null {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SnapshotError(`${file}: ${(err as Error).message}`);
  }
  return decodeSnapshot(buf, file);
}

/** Writes a snapshot atomically and durably (temporary file, fsync, rename, folder fsync). */
export function writeSnapshotFile(dir: string, file: string, data: Uint8Array): void {
  writeFileAtomic(file, data);
  fsyncPath(dir);
}

/** Removes the folder's other snapshots (other versions: never loadable by the version served now) and dead writers' temporary files. */
export function removeOtherSnapshots(dir: string, keep: string): void {
  for (const f of readdirSync(dir)) {
    const path = join(dir, f);
    if (path === keep) continue;
    const tmp = /\.tmp-(\d+)$/.exec(f);
    if (tmp ? !pidAlive(Number(tmp[1])) : /^v\d+\.snapshot$/.test(f)) rmSync(path, { force: true });
  }
}
