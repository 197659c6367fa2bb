import { Redis, type RedisOptions } from 'ioredis';
import pino, { type Logger } from 'pino';
import type { Broker, BrokerStatus } from './broker.js';
import { checkPrefix, reconnectDelay, StatusReporter, withTimeout } from './broker-support.js';

export interface RedisBrokerOptions {
  /** Cluster namespace: topic `t` travels on channel `<prefix>:t`. Default `gatehouse`. */
  prefix?: string;
  logger?: Logger;
  /** How long `ping()` waits for both connections to answer. Default 2 s. */
  pingTimeoutMs?: number;
  /** Longest wait between two reconnect attempts. Default 2 s. */
  maxReconnectDelayMs?: number;
}

type Role = 'publish' | 'subscribe';

/**
 * Redis pub/sub (ioredis) with one connection for PUBLISH and one for SUBSCRIBE, as Redis
 * requires. Both reconnect by themselves forever with capped backoff; the subscriber
 * re-subscribes every channel after a reconnect.
 *
 * - Until the first connection is up, `publish` and `subscribe` wait for it; `ping` rejects.
 * - Once connected, `publish` and `subscribe` reject at once while Redis is unreachable
 *   (nothing is queued: a lost live delivery is healed by cursor replay), and `ping` rejects
 *   until both connections are back and the re-subscriptions are confirmed.
 * - Connection errors are logged, never emitted unhandled; a throwing handler is logged too.
 * - `status()` is `ready` while both connections are; after a failed attempt or a lost
 *   connection it is `reconnecting` until both are ready again.
 */
export class RedisBroker implements Broker {
  readonly prefix: string;
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly log: Logger;
  private readonly pingTimeoutMs: number;
  /** channel → handlers; a channel is subscribed in Redis while it has handlers. */
  private readonly channels = new Map<string, Set<(payload: string) => void>>();
  private readonly ready: Promise<void>;
  private rejectReady: (err: Error) => void = () => {};
  private connectedOnce = false;
  private closed = false;
  /** Set while the publish connection is corked until the current microtasks have run. */
  private corked = false;
  private readonly reporter = new StatusReporter('connecting');
  /** Which connections are ready now. */
  private readonly up = { publish: false, subscribe: false };
  /** An attempt failed or a connection was lost since the start. */
  private failed = false;

  constructor(url: string, options: RedisBrokerOptions = {}) {
    this.prefix = checkPrefix(options.prefix ?? 'gatehouse');
    this.log = options.logger ?? pino({ level: 'silent' });
    this.pingTimeoutMs = options.pingTimeoutMs ?? 2000;
    const maxDelay = options.maxReconnectDelayMs ?? 2000;
    const common: RedisOptions = {
      retryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
      // Commands in flight when a connection drops are resent after the reconnect.
      autoResendUnfulfilledCommands: true,
    };
    this.publisher = new Redis(url, {
      ...common,
      connectionName: `${this.prefix}-publish`,
      enableOfflineQueue: false,
    });
    this.subscriber = new Redis(url, {
      ...common,
      connectionName: `${this.prefix}-subscribe`,
      autoResubscribe: true,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      let waiting = 2;
      const onReady = () => {
        waiting -= 1;
        if (waiting === 0) {
          this.connectedOnce = true;
          resolve();
        }
      };
      this.publisher.once('ready', onReady);
      this.subscriber.once('ready', onReady);
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.watch(this.publisher, 'publish');
    this.watch(this.subscriber, 'subscribe');
    this.subscriber.on('message', (channel: string, message: string) => this.dispatch(channel, message));
  }

  publish(topic: string, payload: string): Promise<void> {
    // No await on the connected path: publications reach ioredis in the order of the calls.
    if (!this.connectedOnce) return this.connected().then(() => this.publish(topic, payload));
    if (this.closed) return Promise.reject(new Error('broker is closed'));
    if (this.publisher.status !== 'ready')
      return Promise.reject(new Error(`Redis is unreachable (publish connection ${this.publisher.status})`));
    this.corkUntilTurnEnds();
    return this.publisher.publish(this.channel(topic), payload).then(() => {});
  }

  async subscribe(topic: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    await this.connected();
    if (this.subscriber.status !== 'ready')
      throw new Error(`Redis is unreachable (subscribe connection ${this.subscriber.status})`);
    const channel = this.channel(topic);
    let handlers = this.channels.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.channels.set(channel, handlers);
    }
    // Wrap so the same function can be subscribed twice and removed once.
    const entry = (payload: string) => handler(payload);
    handlers.add(entry);
    try {
      // Sent for every subscription, not only the first of a channel: its reply is what
      // tells this caller that Redis has registered the channel.
      await this.subscriber.subscribe(channel);
    } catch (err) {
      await this.remove(channel, entry);
      throw err;
    }
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      await this.remove(channel, entry);
    };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('broker is closed');
    for (const [role, client] of [
      ['publish', this.publisher],
      ['subscribe', this.subscriber],
    ] as const)
      if (client.status !== 'ready') throw new Error(`Redis is unreachable (${role} connection ${client.status})`);
    // PING on the subscriber connection is answered after any re-SUBSCRIBE sent before it.
    await withTimeout(
      Promise.all([this.publisher.ping(), this.subscriber.ping()]),
      this.pingTimeoutMs,
      `Redis did not answer PING within ${this.pingTimeoutMs} ms`,
    );
  }

  status(): BrokerStatus {
    return this.reporter.get();
  }

  onStatus(listener: (status: BrokerStatus, previous: BrokerStatus) => void): () => void {
    return this.reporter.on(listener);
  }

  private updateStatus(): void {
    if (this.closed) this.reporter.set('closed');
    else if (this.up.publish && this.up.subscribe) this.reporter.set('ready');
    else this.reporter.set(this.failed ? 'reconnecting' : 'connecting');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.updateStatus();
    this.rejectReady(new Error('broker is closed'));
    this.channels.clear();
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  /**
   * Publications made in one go (a group-commit batch acks and publishes all its messages at
   * once) leave in one socket write instead of one each: fewer system calls here, fewer reads
   * and wake-ups for Redis. The write goes out as soon as the current microtasks have run.
   */
  private corkUntilTurnEnds(): void {
    if (this.corked) return;
    const stream = this.publisher.stream;
    this.corked = true;
    stream.cork();
    queueMicrotask(() => {
      this.corked = false;
      stream.uncork();
    });
  }

  private channel(topic: string): string {
    return `${this.prefix}:${topic}`;
  }

  private async connected(): Promise<void> {
    if (this.closed) throw new Error('broker is closed');
    if (!this.connectedOnce) await this.ready;
  }

  private dispatch(channel: string, message: string): void {
    const handlers = this.channels.get(channel);
    if (!handlers) return;
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (err) {
        this.log.error({ err, channel }, 'broker message handler threw');
      }
    }
  }

  private async remove(channel: string, entry: (payload: string) => void): Promise<void> {
    const handlers = this.channels.get(channel);
    if (!handlers?.delete(entry) || handlers.size > 0) return;
    this.channels.delete(channel);
    if (this.closed) return;
    // Commands on one connection run in order, so a later SUBSCRIBE of the same channel
    // (sent after this UNSUBSCRIBE) wins. During an outage the UNSUBSCRIBE waits in the
    // offline queue; delivery has already stopped here, so the caller need not wait for it.
    const done = this.subscriber.unsubscribe(channel).then(
      () => {},
      (err: Error) => this.log.warn({ err, channel }, 'broker unsubscribe failed'),
    );
    if (this.subscriber.status === 'ready') await done;
  }

  /** Logs the life of one connection; the 'error' listener keeps errors from going unhandled. */
  private watch(client: Redis, role: Role): void {
    let up = false;
    let everUp = false;
    let lastError = '';
    client.on('error', (err: Error) => {
      this.failed = true;
      this.up[role] = false;
      this.updateStatus();
      // While the server is down every retry fails the same way: log each kind once per outage.
      if (err.message === lastError) return;
      lastError = err.message;
      this.log.warn({ err, connection: role }, 'broker connection error');
    });
    client.on('ready', () => {
      lastError = '';
      this.log.info({ connection: role }, everUp ? 'broker reconnected' : 'broker connected');
      up = true;
      everUp = true;
      this.up[role] = true;
      this.updateStatus();
    });
    client.on('close', () => {
      if (up && !this.closed) this.log.warn({ connection: role }, 'broker connection lost');
      up = false;
      this.failed = true;
      this.up[role] = false;
      this.updateStatus();
    });
    client.on('reconnecting', (delay: number) => this.log.debug({ connection: role, delay }, 'broker reconnecting'));
  }
}

/** QUIT when connected (pending replies arrive first); otherwise drop the socket and stop retrying. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {}
  }
  client.disconnect();
}
