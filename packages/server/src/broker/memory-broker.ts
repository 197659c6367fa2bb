import type { Broker, BrokerStatus } from './broker.js';
import { StatusReporter } from './broker-support.js';

/**
 * In-process broker for the embedded default. Single node only: nothing leaves this
 * process. Delivery is synchronous within `publish`, in subscription order.
 */
export class MemoryBroker implements Broker {
  private readonly topics = new Map<string, Set<(payload: string) => void>>();
  private readonly reporter = new StatusReporter('ready');

  async publish(topic: string, payload: string): Promise<void> {
    const handlers = this.topics.get(topic);
    if (handlers) for (const handler of handlers) handler(payload);
  }

  async subscribe(topic: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    let handlers = this.topics.get(topic);
    if (!handlers) {
      handlers = new Set();
      this.topics.set(topic, handlers);
    }
    // Wrap so the same function can be subscribed twice and removed once.
    const entry = (payload: string) => handler(payload);
    handlers.add(entry);
    return async () => {
      handlers.delete(entry);
    };
  }

  async ping(): Promise<void> {}

  status(): BrokerStatus {
    return this.reporter.get();
  }

  onStatus(listener: (status: BrokerStatus, previous: BrokerStatus) => void): () => void {
    return this.reporter.on(listener);
  }

  async close(): Promise<void> {
    this.reporter.set('closed');
    this.topics.clear();
  }
}
