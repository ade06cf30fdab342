/**
 * What a served version knows of its items beyond their vectors (issue 18): labels (the bundle's
 * item_labels.json), items hidden from every answer, and each user's dislikes. Read by the
 * per-request item filter (recommender.ts); the dislikes come from POST /interactions entries of
 * `"type": "dislike"` (online-learner.ts), replayed from the log like every interaction.
 */
export class ItemCatalog {
  /** Label → the item rows carrying it (built on first use). */
  private byLabel: Map<string, Set<number>> | null = null;
  /**
   * Rows left out of every answer: deleted items (DELETE /items) and items added online whose
   * vector is not placed yet (PUT /items while the encoder runs). Read-only outside: change it
   * through hide/unhide and placing/placed, which keep the two reasons apart.
   */
  readonly hidden = new Set<number>();
  /** Deleted rows (a later PUT brings the item back). */
  readonly deleted = new Set<number>();
  /** Rows added online waiting for their vector. */
  private readonly unplaced = new Set<number>();
  /** User id → the item rows that user disliked (by id: a user learned online may lose its row, not its dislikes). */
  private readonly dislikes = new Map<string, Set<number>>();

  constructor(
    /** Labels by item row; rows without labels are absent. */
    readonly labels: Map<number, string[]> = new Map(),
  ) {}

  /** The rows carrying any of `labels` (a fresh set). */
  rowsWithAny(labels: readonly string[]): Set<number> {
    if (!this.byLabel) {
      this.byLabel = new Map();
      for (const [row, ls] of this.labels) for (const l of ls) this.index(l, row);
    }
    const out = new Set<number>();
    for (const l of labels) for (const r of this.byLabel.get(l) ?? []) out.add(r);
    return out;
  }

  private index(label: string, row: number): void {
    let s = this.byLabel!.get(label);
    if (!s) this.byLabel!.set(label, (s = new Set()));
    s.add(row);
  }

  /** Replaces an item's labels. */
  setLabels(row: number, labels: readonly string[]): void {
    if (this.byLabel) for (const l of this.labels.get(row) ?? []) this.byLabel.get(l)?.delete(row);
    if (labels.length) this.labels.set(row, [...labels]);
    else this.labels.delete(row);
    if (this.byLabel) for (const l of labels) this.index(l, row);
  }

  /** DELETE /items: false when it was deleted already. */
  hide(row: number): boolean {
    if (this.deleted.has(row)) return false;
    this.deleted.add(row);
    this.hidden.add(row);
    return true;
  }

  /** PUT /items of a deleted item brings it back (unless its vector is still being placed). */
  unhide(row: number): void {
    this.deleted.delete(row);
    if (!this.unplaced.has(row)) this.hidden.delete(row);
  }

  /** An item added online whose vector is being computed: out of every answer until `placed`. */
  placing(row: number): void {
    this.unplaced.add(row);
    this.hidden.add(row);
  }

  placed(row: number): void {
    this.unplaced.delete(row);
    if (!this.deleted.has(row)) this.hidden.delete(row);
  }

  isPlaced(row: number): boolean {
    return !this.unplaced.has(row);
  }

  dislike(user: string, row: number): boolean {
    let s = this.dislikes.get(user);
    if (!s) this.dislikes.set(user, (s = new Set()));
    if (s.has(row)) return false;
    s.add(row);
    return true;
  }

  /** Every user's dislikes (a published version carries them: cli/finetune.ts). */
  dislikeEntries(): IterableIterator<[string, ReadonlySet<number>]> {
    return this.dislikes.entries();
  }

  dislikesOf(user: string): ReadonlySet<number> | undefined {
    return this.dislikes.get(user);
  }

  /** Users with dislikes (snapshots and tests). */
  get dislikingUsers(): number {
    return this.dislikes.size;
  }
}
