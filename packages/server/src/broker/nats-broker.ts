import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import type { Broker, BrokerStatus } from './broker.js';
import { checkPrefix, reconnectDelay, StatusReporter, withTimeout } from './broker-support.js';

export interface NatsBrokerOptions {
  /** Cluster namespace: topic `t` travels on subject `<prefix>.t`. Default `gatehouse`. */
  prefix?: string;
  logger?: Logger;
  /** How long `ping()` and a publication's confirmation may take. Default 2 s. */
  pingTimeoutMs?: number;
  /** Longest wait between two reconnect attempts. Default 2 s. */
  maxReconnectDelayMs?: number;
}

/**
 * A topic as one NATS subject token. Letters, digits, `_` and `-` stay; every other
 * character (`.`, `*`, `>`, whitespace, `%`, non-ASCII…) becomes `%XX` per UTF-8 byte, so
 * two different topics never share a subject.
 */
export function subjectToken(topic: string): string {
  if (topic === '') throw new TypeError('a broker topic cannot be empty');
  return topic.replace(/[^A-Za-z0-9_-]/gu, (char) =>
    Array.from(Buffer.from(char, 'utf8'), (byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

/**
 * Core NATS publish/subscribe on subjects `<prefix>.<topic>`. One connection; the client
 * reconnects forever with capped backoff and re-subscribes by itself.
 *
 * - Until the first connection is up (retried forever, each failure logged), `publish` and
 *   `subscribe` wait for it; `ping` rejects.
 * - `publish` resolves once the server has the message: publications are followed by one
 *   shared PING and resolve on its PONG (a burst of publishes costs one round trip).
 * - Once connected, `publish` and `subscribe` reject at once while NATS is unreachable
 *   (nothing is queued: a lost live delivery is healed by cursor replay), and `ping`
 *   (a flush) rejects until the connection is back.
 * - Status events (disconnect, reconnect, errors, lame duck mode…) are logged, and
 *   reported through `status()` / `onStatus`.
 */
export class NatsBroker implements Broker {
  readonly prefix: string;
  private readonly log: Logger;
  private readonly pingTimeoutMs: number;
  private readonly maxDelay: number;
  private readonly ready: Promise<NatsConnection>;
  private nc: NatsConnection | null = null;
  /** Kept from the status events: false between `disconnect` and `reconnect`. */
  private connectedNow = false;
  /** Delay before the next reconnect attempt; grows with each failed attempt. */
  private nextDelay: number;
  private reconnectAttempts = 0;
  private pendingFlush: Promise<void> | null = null;
  private closed = false;
  private cancelWait: (() => void) | null = null;
  private readonly reporter = new StatusReporter('connecting');

  constructor(
    private readonly url: string,
    options: NatsBrokerOptions = {},
  ) {
    this.prefix = checkPrefix(options.prefix ?? 'gatehouse');
    this.log = options.logger ?? pino({ level: 'silent' });
    this.pingTimeoutMs = options.pingTimeoutMs ?? 2000;
    this.maxDelay = options.maxReconnectDelayMs ?? 2000;
    this.nextDelay = reconnectDelay(1, this.maxDelay);
    this.ready = this.firstConnect();
    this.ready.catch(() => {});
  }

  publish(topic: string, payload: string): Promise<void> {
    // No await on the connected path: publications reach the client in the order of the calls.
    if (!this.nc && !this.closed) return this.ready.then(() => this.publish(topic, payload));
    let nc: NatsConnection;
    try {
      nc = this.usable();
      nc.publish(this.subject(topic), payload);
    } catch (err) {
      return Promise.reject(err);
    }
    this.pendingFlush ??= Promise.resolve().then(() => {
      // Publications made from here on wait for the next PING.
      this.pendingFlush = null;
      return withTimeout(
        nc.flush(),
        this.pingTimeoutMs,
        `NATS did not confirm the publication within ${this.pingTimeoutMs} ms`,
      );
    });
    return this.pendingFlush;
  }

  async subscribe(topic: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    const nc = await this.connection();
    const subject = this.subject(topic);
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.log.warn({ err, subject }, 'broker subscription error');
          return;
        }
        try {
          handler(msg.string());
        } catch (err) {
          this.log.error({ err, subject }, 'broker message handler threw');
        }
      },
    });
    try {
      // The PONG tells that the server has registered the subscription.
      await withTimeout(
        nc.flush(),
        this.pingTimeoutMs,
        `NATS did not confirm the subscription within ${this.pingTimeoutMs} ms`,
      );
    } catch (err) {
      sub.unsubscribe();
      throw err;
    }
    return async () => {
      if (!sub.isClosed()) sub.unsubscribe();
    };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('broker is closed');
    if (!this.nc || !this.connectedNow) throw new Error('NATS is unreachable');
    await withTimeout(this.nc.flush(), this.pingTimeoutMs, `NATS did not answer PING within ${this.pingTimeoutMs} ms`);
  }

  status(): BrokerStatus {
    return this.reporter.get();
  }

  onStatus(listener: (status: BrokerStatus, previous: BrokerStatus) => void): () => void {
    return this.reporter.on(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reporter.set('closed');
    this.cancelWait?.();
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    if (this.connectedNow) {
      // Drain: what was published is sent, then the connection closes.
      try {
        await withTimeout(nc.drain(), this.pingTimeoutMs, 'NATS drain timed out');
        return;
      } catch (err) {
        this.log.warn({ err }, 'broker drain failed; closing');
      }
    }
    await nc.close();
  }

  private subject(topic: string): string {
    return `${this.prefix}.${subjectToken(topic)}`;
  }

  private async connection(): Promise<NatsConnection> {
    if (!this.nc && !this.closed) await this.ready;
    return this.usable();
  }

  /** The connection, if it is up now. */
  private usable(): NatsConnection {
    if (this.closed) throw new Error('broker is closed');
    if (!this.nc || !this.connectedNow) throw new Error('NATS is unreachable (reconnecting)');
    return this.nc;
  }

  /** The first connection, retried with backoff until it succeeds or the broker is closed. */
  private async firstConnect(): Promise<NatsConnection> {
    let lastError = '';
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new Error('broker is closed');
      try {
        const nc = await connect({
          servers: this.url,
          name: `gatehouse-${this.prefix}`,
          // After the first connection the client itself reconnects, forever, with our backoff.
          maxReconnectAttempts: -1,
          reconnectDelayHandler: () => this.nextDelay,
          pingInterval: 10_000,
          maxPingOut: 3,
        });
        if (this.closed) {
          await nc.close();
          throw new Error('broker is closed');
        }
        this.nc = nc;
        this.connectedNow = true;
        this.watch(nc);
        this.reporter.set('ready');
        this.log.info({ server: nc.getServer() }, 'broker connected');
        return nc;
      } catch (err) {
        if (this.closed) throw err;
        const message = (err as Error).message;
        if (message !== lastError) this.log.warn({ err }, 'broker connection error');
        lastError = message;
        this.reporter.set('reconnecting');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, reconnectDelay(attempt, this.maxDelay));
          this.cancelWait = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.cancelWait = null;
      }
    }
  }

  private watch(nc: NatsConnection): void {
    (async () => {
      for await (const status of nc.status()) this.onClientStatus(status);
    })().catch((err) => this.log.error({ err }, 'broker status watcher failed'));
    nc.closed().then(
      (err) => {
        this.connectedNow = false;
        this.reporter.set(this.closed ? 'closed' : 'reconnecting');
        if (err && !this.closed) this.log.error({ err }, 'broker connection closed with an error');
      },
      () => {},
    );
  }

  private onClientStatus(status: Status): void {
    switch (status.type) {
      case 'disconnect':
        this.connectedNow = false;
        this.reporter.set('reconnecting');
        if (!this.closed) this.log.warn({ server: status.server }, 'broker connection lost');
        break;
      case 'reconnecting':
        this.reconnectAttempts += 1;
        this.nextDelay = reconnectDelay(this.reconnectAttempts + 1, this.maxDelay);
        this.log.debug({ attempt: this.reconnectAttempts }, 'broker reconnecting');
        break;
      case 'reconnect':
        this.connectedNow = true;
        this.reporter.set('ready');
        this.reconnectAttempts = 0;
        this.nextDelay = reconnectDelay(1, this.maxDelay);
        this.log.info({ server: status.server }, 'broker reconnected');
        break;
      case 'error':
        this.log.error({ err: status.error }, 'broker error');
        break;
      case 'ldm':
        this.log.warn({ server: status.server }, 'broker server is entering lame duck mode');
        break;
      case 'staleConnection':
        this.log.warn('broker connection is stale; reconnecting');
        break;
      case 'slowConsumer':
        this.log.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'broker slow consumer');
        break;
      case 'close':
        this.connectedNow = false;
        this.reporter.set(this.closed ? 'closed' : 'reconnecting');
        this.log.info('broker connection closed');
        break;
      default:
        this.log.debug({ status: status.type }, 'broker status');
    }
  }
}
