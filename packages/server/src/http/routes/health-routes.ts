import type { Services } from '../../services.js';
import type { RestApp } from '../rest-app.js';

async function check(probe: () => Promise<void>): Promise<string> {
  try {
    await probe();
    return 'ok';
  } catch (err) {
    return `unavailable: ${(err as Error).message}`.slice(0, 200);
  }
}

/** Liveness and readiness (SPEC §2). */
export function registerHealthRoutes(app: RestApp, services: Services): void {
  app.get('/healthz', { schema: { summary: 'The process is alive' } }, async () => ({ status: 'ok' }));

  app.get('/metrics', { schema: { summary: 'Prometheus metrics of this node' } }, async (_request, reply) => {
    const { registry } = services.metrics;
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  app.get('/readyz', { schema: { summary: 'Store and broker are reachable' } }, async (_request, reply) => {
    const [store, broker] = await Promise.all([
      check(() => services.store.ping()),
      check(() => services.broker.ping()),
    ]);
    const ready = store === 'ok' && broker === 'ok';
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', store, broker });
  });
}
