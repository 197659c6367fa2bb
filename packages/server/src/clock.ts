/**
 * Time source for everything that expires (tokens, tickets, heartbeats, auth timeouts).
 * Injected so tests move time forward instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/** A clock that only moves when told to; `advance` runs the due periodic callbacks in order. */
export class ManualClock implements Clock {
  private current: number;
  private readonly tasks = new Set<{ ms: number; next: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  every(ms: number, fn: () => void): () => void {
    const task = { ms, next: this.current + ms, fn };
    this.tasks.add(task);
    return () => this.tasks.delete(task);
  }

  /** Moves time forward by `ms`, running every periodic task each time it falls due. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let due: { ms: number; next: number; fn: () => void } | undefined;
      for (const task of this.tasks) if (task.next <= target && (!due || task.next < due.next)) due = task;
      if (!due) break;
      this.current = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.current = target;
  }
}
