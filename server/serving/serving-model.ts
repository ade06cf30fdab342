/**
 * One bundle version in memory, ready to answer: user and item tables, id maps, seen items,
 * the popularity order for cold starts, the HNSW index (ANN) and the ONNX scorer (exact); for a
 * sequential bundle also the users' live sequences and the encoder (sequence.onnx) their vectors come from.
 * Loading verifies every checksum, then every array; nothing of a version that fails is served.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { BUNDLE_FILES, CATALOG_FILES, SEQUENCE_FILES, type Manifest } from '../../repository/bundle-format.js';
import { checkBundle, checkHnswLabels, HNSW_HEADER_BYTES, readFileHead } from '../../repository/bundle-check.js';
import { DEFAULTS } from '../../core/defaults.js';
import { verifyBundle } from '../../repository/versions.js';
import { parseNpy, parseNpyInt32 } from '../../core/npy.js';
import { csrHas, type Csr } from '../../core/csr.js';
import type { AnnSource } from '../retrieval/ann.js';
import { CandidateCache } from '../retrieval/candidate-cache.js';
import { AnnIndex } from '../retrieval/ann-index.js';
import { ExactScorer } from '../retrieval/exact.js';
import type { SearchThreads } from '../retrieval/search-threads.js';
import { ResultCache } from './result-cache.js';
import { ItemCatalog } from './item-catalog.js';
import type { ItemEmbedder } from './item-embedder.js';
import { SequenceEncoder } from './sequence-encoder.js';
import { sequenceVectors, tableVectors, type UserVectorSource } from './user-vector-source.js';
import { UserSequences } from './user-sequences.js';
import { ITEM_ENCODER_FILE } from '../../repository/bundle-format.js';
import { OnnxItemEncoder } from './item-encoder.js';

export class BundleLoadError extends Error {
  override readonly name = 'BundleLoadError';
}

export interface LoadOptions {
  providers: string[];
  /** Threads of an ONNX run (the exact scorer and the sequence encoder). */
  onnxThreads?: number;
  ef?: number;
  /** Where the ANN searches run besides the event loop (search-threads.ts); none: on the event loop. */
  searchThreads?: SearchThreads | null;
  /** users whose lists are cached (LRU); 0 = no cache */
  cacheUsers?: number;
  log?: Logger;
  onExactBatch?: (users: number) => void;
}

export class ServingModel implements AnnSource {
  /** Requests currently using this version; the old version is released when it drops to 0 after a swap. */
  inFlight = 0;

  constructor(
    readonly name: string,
    readonly version: number,
    readonly manifest: Manifest,
    readonly dim: number,
    readonly userIndex: Map<string, number>,
    /** Row-major user table; grows (reallocated) as online learning adds users. */
    public userVectors: Float32Array,
    /** Grows as PUT /items adds items (rows from the bundle's count on). */
    readonly itemIds: string[],
    readonly itemIndex: Map<string, number>,
    /** Row-major item table; reallocated with spare room as PUT /items adds items (read `itemTable()` for exactly nItems rows). */
    public itemVectors: Float32Array,
    readonly seenOffsets: Int32Array,
    readonly seenItems: Int32Array,
    /** Item rows by decreasing train popularity (ties by row). */
    readonly popularOrder: Int32Array,
    readonly popularity: Int32Array,
    /** Replaced by a rebuilt index after a fine-tuning round that moved much of the catalog. */
    public ann: AnnIndex,
    public ef: number,
    public exact: ExactScorer,
  ) {
    this.seen = { indptr: seenOffsets, indices: seenItems };
    this.rowsUsed = userIndex.size;
    this.vectors = tableVectors(this);
  }

  /** Where answers take a user's vector from: the table, or (sequential bundle) the encoder on the live sequence. */
  vectors: UserVectorSource;
  /** A sequential bundle's: each user's last maxLen items, and the encoder. Null for a user-table bundle. */
  sequences: UserSequences | null = null;
  encoder: SequenceEncoder | null = null;
  /** The bundle's item encoder (manifest `itemEncoder`: item_encoder.onnx): new items from their features. Null without one. */
  embedder: ItemEmbedder | null = null;
  /** item_encoder.onnx as loaded (a published fine-tuning round carries it over: cli/finetune.ts). */
  itemEncoderBytes: Uint8Array | null = null;

  /** The bundle's train items per user row, as the trainer's CSR (for its binary search). */
  private readonly seen: Csr;
  /** Items a user interacted with after the bundle was built (online learning), by user row. */
  readonly extraSeen = new Map<number, Set<number>>();
  /** Highest interaction-log position applied to this version's state. */
  appliedPosition = 0;
  cache = new ResultCache(0);
  candidates = new CandidateCache(0);
  /** Issue 18: labels, hidden items and dislikes (item-catalog.ts). */
  catalog = new ItemCatalog();

  get nItems(): number {
    return this.itemIds.length;
  }

  /** Items of the bundle: rows below this have trained vectors; those above were added online (PUT /items). */
  get bundleItems(): number {
    return this.manifest.counts.items;
  }

  /** The item table, exactly nItems rows (no spare room). */
  itemTable(): Float32Array {
    return this.itemVectors.subarray(0, this.nItems * this.dim);
  }

  /**
   * A new item row for an id added online (PUT /items): its vector zero until placeItem, and out
   * of every answer until then (the caller marks it placing in the catalog).
   */
  addItem(id: string): number {
    const row = this.itemIds.length;
    const d = this.dim;
    if ((row + 1) * d > this.itemVectors.length) {
      const grown = new Float32Array(Math.max((row + 1) * d, Math.ceil((this.itemVectors.length * 1.25) / d) * d + 64 * d));
      grown.set(this.itemVectors);
      this.itemVectors = grown;
    }
    this.itemIds.push(id);
    this.itemIndex.set(id, row);
    return row;
  }

  /**
   * DELETE /items: the item leaves every answer (the catalog's filter) and the ANN search
   * (hnswlib markDelete: a deleted item no longer takes a place in a search). False when it was
   * deleted already.
   */
  hideItem(row: number): boolean {
    if (!this.catalog.hide(row)) return false;
    try {
      this.ann.markDelete(row);
    } catch {
      // not in the index (an added item never placed): the filter alone hides it
    }
    this.cache.clear();
    return true;
  }

  /** A PUT of a deleted item brings it back, in the filter and in the index. */
  unhideItem(row: number): void {
    if (!this.catalog.deleted.has(row)) return;
    this.catalog.unhide(row);
    try {
      this.ann.unmarkDelete(row);
    } catch {
      // not in the index, or not marked
    }
    this.cache.clear();
    this.candidates.clear();
  }

  /**
   * Sets an item's vector and links it into the ANN index (hnswlib re-links an existing label;
   * the index grows when full). The exact path reads rows past its ONNX table from the item
   * table itself (exact.ts), so nothing else needs rebuilding.
   */
  placeItem(row: number, vector: Float32Array): void {
    const d = this.dim;
    this.itemVectors.set(vector, row * d);
    this.relink(this.ann, row);
    this.placements.set(row, ++this.placementSeq);
    if (row < this.exact.nItems) this.tablePlacements.set(row, this.placementSeq);
    // Answers and candidates computed before it may now be wrong.
    this.cache.clear();
    this.candidates.clear();
  }

  /** (Re-)links an item's current vector into an index (grown when full); a deleted item stays marked (addPoint clears the mark). */
  relink(index: AnnIndex, row: number): void {
    if (index.getCurrentCount() >= index.getMaxElements()) index.resizeIndex(Math.ceil(index.getMaxElements() * 1.25) + 64);
    const d = this.dim;
    index.addPoint(Array.from(this.itemVectors.subarray(row * d, (row + 1) * d)), row);
    if (this.catalog.deleted.has(row)) index.markDelete(row);
  }

  /**
   * Rows placed by PUT /items, with the sequence number of their last placement: the exact
   * scorer's ONNX table and a rebuilt ANN index are copies of the item table, so a row placed
   * after the copy was taken is read from the table itself (exact.ts) or linked again
   * (round.ts) until the next copy covers it.
   */
  readonly placements = new Map<number, number>();
  /** The same for the rows inside the exact scorer's table (the ones its requests must re-score: kept apart so that they read only these). */
  private readonly tablePlacements = new Map<number, number>();
  placementSeq = 0;

  /** Rows placed after the copy taken at `seq` (a copy holds every placement up to it). */
  placedSince(seq: number): number[] {
    const out: number[] = [];
    for (const [row, s] of this.placements) if (s > seq) out.push(row);
    return out;
  }

  /** The placement sequence number when the exact scorer's ONNX table was copied (0: the bundle's). */
  exactCopySeq = 0;

  /** A new ONNX table copied at `seq` now serves: the placements up to it are in it. */
  exactRefreshed(seq: number): void {
    this.exactCopySeq = seq;
    for (const [row, s] of this.placements) {
      if (s <= seq) this.placements.delete(row);
      // placed while the table was being copied: inside the new table with an older vector
      else if (row < this.exact.nItems) this.tablePlacements.set(row, s);
    }
    for (const [row, s] of this.tablePlacements) if (s <= seq) this.tablePlacements.delete(row);
  }

  /** Bumped by every swap of the exact scorer (a renewal opened across one is dropped: the other is newer). */
  private exactGeneration = 0;
  private renewing = false;
  private closed = false;
  /** Where a renewal of the exact scorer logs (the server's logger). */
  log?: Logger;

  /**
   * A new exact scorer over the current item table (a fine-tuning round's refresh), swapped in
   * (the old one closes after its queue), and the version's caches cleared (answers must stay
   * exact after items moved). False when `live()` says the version stopped being served, or
   * (`ifUnchanged`) when another swap happened while this one opened.
   */
  async replaceExact(live: () => boolean, log?: Logger, ifUnchanged = false): Promise<boolean> {
    if (!live()) return false;
    const seq = this.placementSeq;
    const generation = this.exactGeneration;
    const cur = this.exact;
    const next = await ExactScorer.fromTable(this.itemTable(), this.nItems, this.dim, [cur.provider], log, cur.onBatch, cur.threads);
    if (!live() || (ifUnchanged && generation !== this.exactGeneration)) {
      await next.close(); // (the version was retired, and its scorer closed, while this one opened; or a newer one serves)
      return false;
    }
    const old = this.exact;
    this.exact = next;
    this.exactGeneration++;
    this.exactRefreshed(seq);
    this.cache.clear();
    this.candidates.clear();
    old.close().catch((err) => log?.warn({ err: (err as Error).message }, 'closing the previous ONNX session failed'));
    return true;
  }

  /** The exact scorer's thread died (exact.ts answers from the table meanwhile): a new one, one at a time, unless a refresh replaces it first. */
  renewExact(): void {
    if (this.renewing || this.closed) return;
    this.renewing = true;
    this.log?.warn('exact scorer: opening a new one over the item table');
    this.replaceExact(() => !this.closed, this.log, true)
      .then((ok) => ok && this.log?.info('exact scorer: the new one serves'))
      .catch((err: unknown) => this.log?.error({ err: (err as Error).message }, 'exact scorer: a new one could not open; answers stay scored on the event loop'))
      .finally(() => (this.renewing = false));
  }

  /** Rows inside the exact scorer's table whose vector was placed after the table was copied (exact.ts scores them from the item table). */
  staleTableRows(): number[] {
    if (this.tablePlacements.size === 0) return [];
    const out: number[] = [];
    for (const [row, s] of this.tablePlacements) if (s > this.exactCopySeq && row < this.exact.nItems) out.push(row);
    return out;
  }

  get nUsers(): number {
    return this.userIndex.size;
  }

  /** Train items of a user row in the bundle (sorted ascending); empty for users added online. */
  seenOf(row: number): Int32Array {
    if (row + 1 >= this.seenOffsets.length) return new Int32Array(0);
    return this.seenItems.subarray(this.seenOffsets[row], this.seenOffsets[row + 1]);
  }

  /** Number of items the user has seen (bundle + online). */
  seenCount(row: number): number {
    return this.seenOf(row).length + (this.extraSeen.get(row)?.size ?? 0);
  }

  isSeen(row: number, item: number): boolean {
    // Users added online have no row in the bundle's CSR.
    if (row + 1 < this.seenOffsets.length && csrHas(this.seen, row, item)) return true;
    return this.extraSeen.size > 0 && (this.extraSeen.get(row)?.has(item) ?? false);
  }

  /** Adds an item to the user's seen set; returns false if it was already there. */
  addSeen(row: number, item: number): boolean {
    if (this.isSeen(row, item)) return false;
    let set = this.extraSeen.get(row);
    if (!set) this.extraSeen.set(row, (set = new Set()));
    set.add(item);
    return true;
  }

  /** Users of the bundle: rows below this are never removed. */
  get bundleUsers(): number {
    return this.manifest.counts.users;
  }

  /** Rows of removed online users, reused before the table grows. */
  private freeRows: number[] = [];
  /** Rows handed out so far (bundle users, then users added online). */
  private rowsUsed: number;

  /** Adds a user first seen online with the given vector; returns its row (a removed user's, or a new one). */
  addUser(id: string, vector: Float32Array): number {
    const row = this.freeRows.pop() ?? this.rowsUsed++;
    const d = this.dim;
    if ((row + 1) * d > this.userVectors.length) {
      const grown = new Float32Array(Math.max((row + 1) * d, Math.ceil(this.userVectors.length * 1.5)));
      grown.set(this.userVectors);
      this.userVectors = grown;
    }
    this.userVectors.set(vector, row * d);
    this.userIndex.set(id, row);
    return row;
  }

  /**
   * Forgets a user added online (its id, seen items and cached answers); its row is reused by a
   * later addUser. Returns false for unknown users and users of the bundle, which stay.
   */
  removeUser(id: string): boolean {
    const row = this.userIndex.get(id);
    if (row === undefined || row < this.bundleUsers) return false;
    this.userIndex.delete(id);
    this.extraSeen.delete(row);
    this.sequences?.drop(row);
    this.cache.dropUser(id);
    this.candidates.dropUser(row);
    this.userVectors.fill(0, row * this.dim, (row + 1) * this.dim);
    this.freeRows.push(row);
    return true;
  }

  userVector(row: number): Float32Array {
    return this.userVectors.subarray(row * this.dim, (row + 1) * this.dim);
  }

  /** The student's score: dot product of the user's and the item's vectors. */
  score(user: Float32Array, itemRow: number): number {
    const d = this.dim;
    const base = itemRow * d;
    let s = 0;
    for (let j = 0; j < d; j++) s += user[j] * this.itemVectors[base + j];
    return s;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ann.dispose();
    await Promise.all([this.exact.close(), this.encoder?.close(), this.embedder?.close()]);
  }
}

/** Verifies the bundle in `dir` against its manifest, checks every array (repository/bundle-check.ts) and loads it. */
export async function loadServingModel(dir: string, opts: LoadOptions): Promise<ServingModel> {
  const v = await verifyBundle(dir);
  if (!v.ok || !v.manifest) throw new BundleLoadError(`${dir}: verification failed: ${v.problems.join('; ')}`);
  const m = v.manifest;
  const d = m.dim;
  const file = (f: string) => join(dir, f);
  const [users, items] = await Promise.all([readFile(file(BUNDLE_FILES.userEmbeddings)), readFile(file(BUNDLE_FILES.itemEmbeddings))]);
  const u = parseNpy(users, BUNDLE_FILES.userEmbeddings);
  const it = parseNpy(items, BUNDLE_FILES.itemEmbeddings);
  const off = parseNpyInt32(await readFile(file(BUNDLE_FILES.seenOffsets)), BUNDLE_FILES.seenOffsets);
  const seen = parseNpyInt32(await readFile(file(BUNDLE_FILES.seenItems)), BUNDLE_FILES.seenItems);
  const pop = parseNpyInt32(await readFile(file(BUNDLE_FILES.popularity)), BUNDLE_FILES.popularity);
  const onnxBytes = await readFile(file(BUNDLE_FILES.onnx));
  const sequence =
    m.model === 'sasrec'
      ? {
          offsets: parseNpyInt32(await readFile(file(SEQUENCE_FILES.offsets)), SEQUENCE_FILES.offsets),
          items: parseNpyInt32(await readFile(file(SEQUENCE_FILES.items)), SEQUENCE_FILES.items),
          onnx: await readFile(file(SEQUENCE_FILES.model)),
        }
      : undefined;
  const itemEncoderBytes = m.itemEncoder ? await readFile(file(ITEM_ENCODER_FILE)) : undefined;
  // Before anything is built from them: csrHas trusts the offsets, hnswlib and onnxruntime their files.
  // Issue 18: the optional item labels (checked with the rest).
  const itemLabelsJson = m.files[CATALOG_FILES.itemLabels] ? await readFile(file(CATALOG_FILES.itemLabels), 'utf8') : undefined;
  const catalogStateJson = m.files[CATALOG_FILES.catalogState] ? await readFile(file(CATALOG_FILES.catalogState), 'utf8') : undefined;
  const { ids, userIndex, itemIndex, itemLabels, catalogState } = checkBundle({
    folder: basename(dir), manifest: m, userEmbeddings: u, itemEmbeddings: it, idsJson: await readFile(file(BUNDLE_FILES.ids), 'utf8'),
    seenOffsets: off, seenItems: seen, popularity: pop, hnsw: await readFileHead(file(BUNDLE_FILES.hnsw), HNSW_HEADER_BYTES), onnx: onnxBytes, sequence, itemLabelsJson, catalogStateJson, itemEncoder: itemEncoderBytes,
  });

  const popularOrder = Int32Array.from({ length: m.counts.items }, (_, i) => i).sort((a, b) => pop.data[b] - pop.data[a] || a - b);
  const ef = opts.ef ?? m.hnsw.efSearch;
  const ann = await AnnIndex.open(file(BUNDLE_FILES.hnsw), d, ef, opts.searchThreads ?? null, opts.log);
  try {
    checkHnswLabels(ann.getIdsList(), m.counts.items);
  } catch (err) {
    ann.dispose();
    throw err;
  }
  const exact = await ExactScorer.open(onnxBytes, d, m.counts.items, opts.providers, opts.log, opts.onExactBatch, opts.onnxThreads).catch((err: unknown) => {
    ann.dispose();
    throw err;
  });
  const model = new ServingModel(
    m.name,
    m.version,
    m,
    d,
    userIndex,
    u.data,
    ids.items,
    itemIndex,
    it.data,
    off.data,
    seen.data,
    popularOrder,
    pop.data,
    ann,
    ef,
    exact,
  );
  if (sequence && m.sequence) {
    try {
      model.encoder = await SequenceEncoder.open(sequence.onnx, d, m.counts.items, m.sequence.maxLen, opts.providers, opts.log, opts.onnxThreads);
    } catch (err) {
      ann.dispose();
      await exact.close();
      throw err;
    }
    model.sequences = new UserSequences(sequence.offsets.data, sequence.items.data, m.sequence.maxLen);
    model.vectors = sequenceVectors(model.sequences, model.encoder);
  }
  // The item encoder (issue 18), when the manifest declares one.
  if (itemEncoderBytes && m.itemEncoder) {
    try {
      model.embedder = await OnnxItemEncoder.open(itemEncoderBytes, m.itemEncoder, d, opts.providers, opts.log, opts.onnxThreads);
      model.itemEncoderBytes = itemEncoderBytes;
    } catch (err) {
      ann.dispose();
      await Promise.all([exact.close(), model.encoder?.close()]);
      throw err;
    }
  }
  model.log = opts.log;
  model.appliedPosition = m.logPosition ?? 0;
  model.catalog = new ItemCatalog(itemLabels);
  // Deletes and dislikes the bundle absorbed (its log position is past them: they are not replayed).
  for (const r of catalogState.hidden) model.hideItem(r);
  for (const [user, rows] of catalogState.dislikes) for (const r of rows) model.catalog.dislike(user, r);
  model.cache = new ResultCache(opts.cacheUsers ?? DEFAULTS.cacheUsers);
  model.candidates = new CandidateCache(opts.cacheUsers ?? DEFAULTS.cacheUsers);
  return model;
}
