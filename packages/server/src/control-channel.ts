import type { Logger } from 'pino';
import type { Broker } from './broker/broker.js';

/** Commands every node applies to its own sockets and caches (SPEC §1 revocation, §7 slots). */
export type ControlEvent =
  | { op: 'session-revoked'; sid: string; reason: 'REVOKED' }
  | { op: 'principal-revoked'; id: string; tokenVersion: number }
  | { op: 'blocked'; id: string; tokenVersion: number }
  | { op: 'unblocked'; id: string; tokenVersion: number }
  | { op: 'kick'; id: string; deviceType?: string }
  | { op: 'conversation-changed'; id: string }
  | { op: 'evict'; connectionId: string; node: string };

const TOPIC = 'control';

/**
 * Events that follow a change already committed to the store: the store stays the truth, so
 * other nodes catch up without the event (revocation cache expiry, re-read after the broker
 * comes back). Publishing them never fails the caller.
 */
const AFTER_COMMIT = new Set<ControlEvent['op']>([
  'session-revoked',
  'principal-revoked',
  'blocked',
  'unblocked',
  'conversation-changed',
]);

/**
 * Publishes control events through the broker, so they reach every node including this one.
 * While the broker is unreachable an event is applied on this node only: an after-commit
 * event then resolves (logged), any other rejects.
 */
export class ControlChannel {
  private readonly handlers: ((event: ControlEvent) => void)[] = [];
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.broker.subscribe(TOPIC, (payload) => {
      let event: ControlEvent;
      try {
        event = JSON.parse(payload) as ControlEvent;
      } catch {
        return;
      }
      this.dispatch(event);
    });
  }

  private dispatch(event: ControlEvent): void {
    for (const handler of this.handlers) {
      try {
        handler(event);
      } catch (err) {
        this.log.error({ err, op: event.op }, 'control event handler threw');
      }
    }
  }

  on(handler: (event: ControlEvent) => void): void {
    this.handlers.push(handler);
  }

  publish(event: ControlEvent): Promise<void> {
    // Not waiting for a broker that is away (a first connection could take forever).
    const sent =
      this.broker.status() === 'ready'
        ? this.broker.publish(TOPIC, JSON.stringify(event))
        : Promise.reject(new Error(`the broker is ${this.broker.status()}`));
    return sent.catch((err: Error) => {
      this.dispatch(event);
      if (!AFTER_COMMIT.has(event.op)) throw err;
      this.log.warn(
        { err, op: event.op },
        'control event not published; other nodes see the change within auth.revocationCacheTtl or when the broker is back',
      );
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }
}
