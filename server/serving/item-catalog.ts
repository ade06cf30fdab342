/**
 * What a served version knows of its items beyond their vectors (issue 18): labels (the bundle's
 * item_labels.json), items hidden from every answer, and each user's dislikes. Read by the
 * per-request item filter (recommender.ts); the dislikes come from POST /interactions entries of
 * `"type": "dislike"` (online-learner.ts), replayed from the log like every interaction.
 */
export class ItemCatalog {
  /** Label → the item rows carrying it (built on first use). */
  private byLabel: Map<string, Set<number>> | null = null;
  /** Rows hidden from every answer (deleted items). */
  readonly hidden = new Set<number>();
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
