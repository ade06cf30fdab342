/**
 * A bounded FIFO keeping the newest `max` items pushed, in order; dropping the oldest costs O(1)
 * amortized (one splice per push shifted the whole array). The online learner's backlog of
 * interactions waiting for a round.
 */
export class NewestQueue<T> {
  private items: T[] = [];
  /** items before this index are dropped; compacted once they are as many as `max` */
  private from = 0;

  constructor(private readonly max: number) {}

  get length(): number {
    return this.items.length - this.from;
  }

  push(x: T): void {
    this.items.push(x);
    if (this.length > this.max && ++this.from >= this.max) {
      this.items = this.items.slice(this.from);
      this.from = 0;
    }
  }

  /** Removes and returns everything, oldest first. */
  take(): T[] {
    const out = this.from ? this.items.slice(this.from) : this.items;
    this.clear();
    return out;
  }

  clear(): void {
    this.items = [];
    this.from = 0;
  }
}
