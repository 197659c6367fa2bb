/**
 * Fan-out between nodes. A Broker carries small notices ("there is something new", a
 * serialized frame, a kick/revoke command); the Store stays the source of truth, so a
 * lost broker message is healed by cursor replay on reconnect.
 *
 * Guarantees every implementation keeps:
 * - `publish` resolves once the broker accepted the message (not once it was delivered).
 * - Messages published on one topic by one node arrive at each subscriber in that order.
 * - A node receives its own publications too (handlers must tolerate that).
 * - Topics are namespaced per cluster by the implementation (key/subject prefix).
 * - `status()` tells whether the broker is reachable now, and `onStatus` listeners hear each
 *   change (as ioredis and nats.js report theirs): the core re-reads what it may have missed
 *   when a connection comes back, since publications made meanwhile are never replayed.
 */
export interface Broker {
  publish(topic: string, payload: string): Promise<void>;
  /** Calls `handler` for each message on `topic` until the returned function is called. */
  subscribe(topic: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
  /** Resolves when the broker is reachable (for /readyz). */
  ping(): Promise<void>;
  status(): BrokerStatus;
  /** Calls `listener` on every change of `status()` until the returned function is called. */
  onStatus(listener: (status: BrokerStatus, previous: BrokerStatus) => void): () => void;
  close(): Promise<void>;
}

/**
 * - `connecting`: the first connection attempt is under way (nothing failed yet);
 * - `ready`: connected (subscriptions are restored by the client on a reconnect);
 * - `reconnecting`: an attempt failed or the connection was lost; retrying with backoff;
 * - `closed`: `close()` was called.
 */
export type BrokerStatus = 'connecting' | 'ready' | 'reconnecting' | 'closed';
