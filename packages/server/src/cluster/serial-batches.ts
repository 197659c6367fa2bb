/**
 * Runs a batch write one at a time: a call made while a write runs shares the next write,
 * which takes everything queued by then (group commit). A burst of thousands of calls thus
 * costs a few writes and holds one database connection, instead of queueing thousands of
 * queries for the pool.
 */
export class SerialBatches<R> {
  private running: Promise<R> | null = null;
  private queued: Promise<R> | null = null;

  constructor(private readonly write: () => Promise<R>) {}

  /** Resolves with the result of the write that includes what was queued before this call. */
  run(): Promise<R> {
    if (this.queued) return this.queued;
    const previous = this.running ?? Promise.resolve();
    const next: Promise<R> = previous
      .catch(() => {})
      .then(() => {
        this.queued = null;
        this.running = next;
        return this.write();
      })
      .finally(() => {
        if (this.running === next) this.running = null;
      });
    this.queued = next;
    return next;
  }

  /** Resolves once no write runs or waits to run. */
  async settled(): Promise<void> {
    for (let pending = this.queued ?? this.running; pending; pending = this.queued ?? this.running)
      await pending.catch(() => {});
  }
}
