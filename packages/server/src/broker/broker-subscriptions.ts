import type { Logger } from 'pino';
import type { Broker } from './broker.js';

/**
 * Runs `start` (broker subscriptions) until it succeeds: the subscriptions wait for the
 * broker's first connection, and one made while the connection drops again is retried once
 * the broker is ready. `reset` undoes a partial start first.
 */
export async function subscribeWhenReachable(
  broker: Broker,
  start: () => Promise<void>,
  reset: () => Promise<void>,
  log: Logger,
): Promise<void> {
  for (;;) {
    try {
      await start();
      return;
    } catch (err) {
      if (broker.status() === 'closed') return;
      log.warn({ err }, 'broker subscription failed; retrying once the broker is ready');
      await reset().catch(() => {});
      // Not in a tight loop should the broker refuse while it reports ready.
      await new Promise((resolve) => setTimeout(resolve, 250));
      await new Promise<void>((resolve) => {
        const off = broker.onStatus((status) => {
          if (status !== 'ready' && status !== 'closed') return;
          off();
          resolve();
        });
        if (broker.status() === 'ready') {
          off();
          resolve();
        }
      });
    }
  }
}
