/**
 * Micro-batching for an ONNX session (the exact scorer's model.onnx, a sequential bundle's
 * sequence.onnx): while one run is in flight, new work queues up and goes together in the next,
 * at most `max` at a time. `run` settles each queued item itself (a batch may be split further).
 */
export class MicroBatcher<P> {
  private queue: P[] = [];
  private running = false;
  private closedFlag = false;

  constructor(
    private readonly max: number,
    private readonly run: (batch: P[]) => Promise<void>,
  ) {}

  get closed(): boolean {
    return this.closedFlag;
  }

  add(p: P): void {
    this.queue.push(p);
    if (!this.running) this.drain();
  }

  private drain(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.queue.splice(0, this.max);
    void this.run(batch).finally(() => {
      this.running = false;
      this.drain();
    });
  }

  /** Refuses new work (callers check `closed`) and waits for the queued work to finish, so the session can then be released. */
  async close(): Promise<void> {
    this.closedFlag = true;
    while (this.running || this.queue.length) await new Promise((r) => setTimeout(r, 5));
  }
}
