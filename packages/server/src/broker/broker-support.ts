import type { BrokerStatus } from './broker.js';

/** Small pieces shared by the brokers: status reporting, reconnect backoff, timeouts, prefix rules. */

/** Holds a broker's status and tells the listeners of each change (a listener that throws is skipped). */
export class StatusReporter {
  private current: BrokerStatus;
  private readonly listeners = new Set<(status: BrokerStatus, previous: BrokerStatus) => void>();

  constructor(initial: BrokerStatus) {
    this.current = initial;
  }

  get(): BrokerStatus {
    return this.current;
  }

  set(next: BrokerStatus): void {
    const previous = this.current;
    // Once closed, a late event from the client cannot bring the status back.
    if (next === previous || previous === 'closed') return;
    this.current = next;
    for (const listener of [...this.listeners]) {
      try {
        listener(next, previous);
      } catch {}
    }
  }

  on(listener: (status: BrokerStatus, previous: BrokerStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * Capped exponential backoff with jitter for broker reconnects: 100 ms, 200 ms, 400 ms, …
 * up to `capMs`, each scaled by a random factor in [0.5, 1) so that the nodes of a cluster
 * do not all knock on a restarted server at the same instant. Attempts count from 1.
 */
export function reconnectDelay(attempt: number, capMs = 2000, baseMs = 100): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A cluster prefix: dot-separated tokens of letters, digits, `_` and `-` (safe as a Redis and NATS name part). */
export const BROKER_PREFIX_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function checkPrefix(prefix: string): string {
  if (!BROKER_PREFIX_PATTERN.test(prefix))
    throw new TypeError(`broker.prefix "${prefix}" must be dot-separated tokens of letters, digits, _ and -`);
  return prefix;
}
