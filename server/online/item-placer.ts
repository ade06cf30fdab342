/**
 * PUT /items on a served version (issue 18): an `item_put` log record becomes an item of the
 * version. A new id gets the next row (rows are handed out in log order, so every replica and
 * every replay numbers them alike); its vector comes from the version's item encoder run on the
 * record's features, it is linked into the ANN index and scored past the exact table (exact.ts).
 * An item of the bundle keeps its trained vector (better than any guess from its features); a
 * PUT changes its labels and brings it back if it was deleted. An item added online and PUT
 * again is placed anew from its new features.
 *
 * Applying records is synchronous (in log order, between requests), the encoder is not, so the
 * vectors are computed before: `precompute` on the paths that read records (the request, a
 * replay, the stream follower), keyed by the record's log position per version. A record that
 * reaches a version without one (a PUT racing a version swap) is still applied in order: the
 * item gets its row and labels, stays out of every answer while its vector is computed, and is
 * placed when that resolves.
 */
import type { Logger } from 'pino';
import type { LoggedInteraction } from '../../repository/interaction-log.js';
import type { ServingModel } from '../serving/serving-model.js';

export type PutRecord = LoggedInteraction & { position: number };

/** Why a version cannot place an item from features, or null. */
export function cannotPlace(m: ServingModel): string | null {
  if (m.sequences) return `version ${m.version} is a sequential (SASRec) model: its item table is inside sequence.onnx, so new items wait for the next retrain`;
  if (!m.embedder) return `version ${m.version} has no item encoder (trained without modality features, or with --no-item-encoder), so a new item cannot be placed from its features`;
  return null;
}

export class ItemPlacer {
  /** Per version: vectors computed for its item_put records, by log position (dropped once applied). */
  private readonly vectors = new WeakMap<ServingModel, Map<number, Float32Array>>();
  /** Per version: the position of the last put applied to each added row (a slow placement must not undo a later one). */
  private readonly lastPut = new WeakMap<ServingModel, Map<number, number>>();

  constructor(
    private readonly logger: Logger,
    /** Called once an item is (re-)linked at its new vector (the learner clears its index drift). */
    private readonly onPlaced: (m: ServingModel, row: number) => void = () => {},
  ) {}

  /** Stores a vector computed for the version's record at `position` (the request path computes it before the record is durable). */
  store(m: ServingModel, position: number, vector: Float32Array): void {
    let byPos = this.vectors.get(m);
    if (!byPos) this.vectors.set(m, (byPos = new Map()));
    byPos.set(position, vector);
  }

  /** Embeds the features of one put with the version's encoder (the caller validated them against it). */
  async embed(m: ServingModel, features: Record<string, Float32Array>): Promise<Float32Array> {
    const [v] = await m.embedder!.embed([features]);
    return v;
  }

  /** Computes, in one encoder call per version, the vectors of the puts among `entries` that the versions will need. */
  async precompute(versions: readonly (ServingModel | null | undefined)[], entries: readonly PutRecord[]): Promise<void> {
    for (const m of new Set(versions)) {
      if (!m) continue;
      const have = this.vectors.get(m);
      const todo = entries.filter((e) => e.kind === 'item_put' && e.features && needsVector(m, e.item) && !have?.has(e.position) && fitsEncoder(m, e.features));
      if (!todo.length) continue;
      const vs = await m.embedder!.embed(todo.map((e) => e.features!));
      todo.forEach((e, i) => this.store(m, e.position, vs[i]));
    }
  }

  /**
   * Applies a put to the version, in log order. Resolves once the item is placed (at once when
   * its vector was computed before); a record the version cannot place (no encoder, features
   * of another shape) is skipped with a warning: the nightly retrain still absorbs it.
   */
  apply(m: ServingModel, x: LoggedInteraction, position: number): Promise<void> | void {
    let row = m.itemIndex.get(x.item);
    const isNew = row === undefined;
    if (row === undefined || row >= m.bundleItems) {
      const why = cannotPlace(m) ?? (x.features && fitsEncoder(m, x.features) ? null : 'its features do not match the version\'s item encoder');
      if (why) {
        this.logger.warn({ item: x.item.slice(0, 80), position, version: m.version, reason: why }, 'item put not applied to this version');
        return;
      }
    }
    if (row === undefined) row = m.addItem(x.item);
    m.catalog.setLabels(row, x.labels ?? []);
    m.unhideItem(row);
    m.cache.clear();
    if (row < m.bundleItems) return;
    let last = this.lastPut.get(m);
    if (!last) this.lastPut.set(m, (last = new Map()));
    last.set(row, position);
    const byPos = this.vectors.get(m);
    const ready = byPos?.get(position);
    byPos?.delete(position);
    if (ready) {
      m.placeItem(row, ready);
      m.catalog.placed(row);
      this.onPlaced(m, row);
      return;
    }
    // No vector computed for this version: out of every answer until the encoder answers.
    m.catalog.placing(row);
    const r = row;
    return this.embed(m, x.features!).then(
      (v) => {
        if (last.get(r) !== position) return; // a later put of the same item was applied meanwhile
        m.placeItem(r, v);
        m.catalog.placed(r);
        this.onPlaced(m, r);
      },
      (err) => this.logger.error({ item: x.item.slice(0, 80), position, version: m.version, isNew, err: (err as Error).message }, 'placing an item failed: it stays out of answers until it is put again'),
    );
  }
}

/** Whether a put of `id` needs the version's encoder: a new item or one added online (a bundle item keeps its trained vector), on a version that can place items. */
export function needsVector(m: ServingModel, id: string): boolean {
  const row = m.itemIndex.get(id);
  return (row === undefined || row >= m.bundleItems) && cannotPlace(m) === null;
}

/** Whether the features have exactly the version's encoder modalities at their widths (records of another catalog may not). */
export function fitsEncoder(m: ServingModel, features: Record<string, Float32Array>): boolean {
  const mods = m.embedder?.modalities ?? [];
  return Object.keys(features).length === mods.length && mods.every((md) => features[md.name]?.length === md.dim);
}
