import { GatehouseError } from '../errors.js';
import { afterFramesWritten } from '../gateway/frame-writer.js';
import { hotCounters } from '../metrics.js';
import type { AppendResult, NewMessage, Store } from '../store/store.js';

interface Pending {
  message: NewMessage;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/**
 * The most messages one transaction takes. A backlog (after a slow commit) is stored in
 * several, so no single synchronous commit holds the event loop for long (SQLite's is on it).
 */
export const MAX_BATCH = 512;

/**
 * The store's upkeep once a batch's acks are on their sockets. This runs in an immediate queued
 * when the batch was resolved; the acks are queued by the continuations of those resolves, which
 * all run before it, so by now the frame writer's flush of them is pending (or done), and upkeep
 * (SQLite's checkpoint, a few ms on the loop) follows it: it never sits between a commit and its
 * acks, and it starts as early as it can, leaving the most time before the next messages arrive.
 */
function afterAcks(store: Store): void {
  afterFramesWritten(() => store.upkeep?.());
}

/**
 * Group commit: messages sent during one event-loop turn are stored in one transaction
 * (at most MAX_BATCH; the rest go in the next, right after).
 * One batch is in the store at a time, so batches commit in the order they were formed.
 * A failed batch fails each of its sends with STORE_UNAVAILABLE (nothing was stored, no
 * ack goes out); the client retries with the same client_msg_id.
 */
export class MessageWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly onError: (err: unknown) => void,
    private readonly onBatch: (seconds: number) => void = () => {},
  ) {}

  append(message: NewMessage): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.inFlight = this.flush().finally(() => {
        this.inFlight = null;
        if (this.queue.length > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, MAX_BATCH);
    let results: AppendResult[];
    const started = process.hrtime.bigint();
    try {
      results = await this.store.appendMessages(batch.map((p) => p.message));
      this.onBatch(Number(process.hrtime.bigint() - started) / 1e9);
      for (const result of results) if (!result.duplicate) hotCounters.messagesStored++;
    } catch (err) {
      this.onError(err);
      const failure = new GatehouseError(
        'STORE_UNAVAILABLE',
        'the message could not be stored; retry with the same client_msg_id',
        {
          cause: err,
        },
      );
      for (const pending of batch) pending.reject(failure);
      return;
    }
    for (const [i, pending] of batch.entries()) pending.resolve(results[i] as AppendResult);
    if (this.store.upkeep) setImmediate(afterAcks, this.store);
  }

  /** Resolves when everything queued so far is stored (or failed): for graceful shutdown. */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight || this.scheduled) {
      await (this.inFlight ?? new Promise((r) => setImmediate(r)));
    }
  }
}
