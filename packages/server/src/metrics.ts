import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ConnectionRegistry } from './gateway/connection-registry.js';

/**
 * Plain counters bumped on hot paths (a property increment costs nothing next to a
 * prom-client label lookup); the registry reads them when scraped.
 */
export const hotCounters = { framesIn: 0, framesOut: 0, messagesStored: 0 };

/** Prometheus metrics of one node (SPEC §8), served at GET /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly handshakes: Counter<'outcome'>;
  readonly deliveryLatency: Histogram;
  readonly storeLatency: Histogram;
  readonly brokerLatency: Histogram;

  constructor(nodeId: string, connections: ConnectionRegistry) {
    this.registry.setDefaultLabels({ node: nodeId });
    // Process and Node.js metrics (CPU, memory, event-loop lag, GC, handles) with the usual names.
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    new Gauge({
      name: 'gatehouse_connections',
      help: 'Open WebSocket connections by principal kind (unauthenticated ones as "none")',
      labelNames: ['kind'],
      registers,
      collect() {
        const counts: Record<string, number> = { user: 0, agent: 0, customer: 0, none: 0 };
        for (const conn of connections.all) {
          const kind = conn.auth?.principal.kind ?? 'none';
          counts[kind] = (counts[kind] ?? 0) + 1;
        }
        for (const [kind, n] of Object.entries(counts)) this.set({ kind }, n);
      },
    });
    this.handshakes = new Counter({
      name: 'gatehouse_handshakes_total',
      help: 'WebSocket handshakes by outcome: ok, or the refusal code',
      labelNames: ['outcome'],
      registers,
    });
    for (const [name, help, key] of [
      ['gatehouse_frames_in_total', 'Frames received from clients', 'framesIn'],
      ['gatehouse_frames_out_total', 'Frames written to clients', 'framesOut'],
      ['gatehouse_messages_stored_total', 'Messages committed to the store', 'messagesStored'],
    ] as const) {
      let last = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const now = hotCounters[key];
          this.inc(now - last);
          last = now;
        },
      });
    }
    this.deliveryLatency = new Histogram({
      name: 'gatehouse_delivery_latency_seconds',
      help: 'From a message being stored to its frame being written to local sockets',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.storeLatency = new Histogram({
      name: 'gatehouse_store_batch_seconds',
      help: 'Duration of one group-commit batch in the store',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    });
    this.brokerLatency = new Histogram({
      name: 'gatehouse_broker_publish_seconds',
      help: 'Duration of a broker publish until the broker accepted it',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
  }
}
