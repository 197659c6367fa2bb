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

/** Publishes control events through the broker, so they reach every node including this one. */
export class ControlChannel {
  private readonly handlers: ((event: ControlEvent) => void)[] = [];
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(private readonly broker: Broker) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.broker.subscribe(TOPIC, (payload) => {
      let event: ControlEvent;
      try {
        event = JSON.parse(payload) as ControlEvent;
      } catch {
        return;
      }
      for (const handler of this.handlers) handler(event);
    });
  }

  on(handler: (event: ControlEvent) => void): void {
    this.handlers.push(handler);
  }

  publish(event: ControlEvent): Promise<void> {
    return this.broker.publish(TOPIC, JSON.stringify(event));
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }
}
