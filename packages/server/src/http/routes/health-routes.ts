import { Type } from '@sinclair/typebox';
import type { Services } from '../../services.js';
import { adminKeyAuth } from '../credentials.js';
import { ReadinessProbe } from '../readiness-probe.js';
import type { RestApp } from '../rest-types.js';
import { ErrorBody, Health, Readiness } from '../schemas.js';

/** Liveness, readiness and metrics (SPEC §2); `/metrics` needs the admin key when `server.metricsAuth` is set. */
export async function healthRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  const tags = ['health'];
  const readiness = new ReadinessProbe(
    services.store,
    services.broker,
    services.log,
    () => services.storeStartup.ready,
  );

  // None of these needs the store: they answer while the store could not be reached at start.
  const withoutStore = { withoutStore: true } as const;

  app.get(
    '/healthz',
    { config: withoutStore, schema: { summary: 'The process is alive', tags, response: { 200: Health } } },
    async () => ({
      status: 'ok' as const,
    }),
  );

  const metricsAuth = services.config.server.metricsAuth;
  app.get(
    '/metrics',
    {
      ...(metricsAuth ? { onRequest: adminKeyAuth(services.config.adminKey, { bearer: true }) } : {}),
      config: withoutStore,
      schema: {
        summary: 'Prometheus metrics of this node',
        description:
          'Text exposition format. With `server.metricsAuth` the admin key is required, as `X-Admin-Key` or `Authorization: Bearer`.',
        tags,
        ...(metricsAuth ? { security: [{ adminKey: [] }, { adminBearer: [] }] } : {}),
        response: {
          200: { description: 'Prometheus text format', content: { 'text/plain': { schema: Type.String() } } },
          401: ErrorBody,
        },
      },
    },
    async (_request, reply) => {
      const { registry } = services.metrics;
      return reply.type(registry.contentType).send(await registry.metrics());
    },
  );

  app.get(
    '/readyz',
    {
      config: withoutStore,
      schema: {
        summary: 'The store accepts writes and the broker is reachable',
        description:
          'A tiny write to the store and a broker ping, cached for one second. 503 while either fails; why is in the server log only.',
        tags,
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const { store, broker } = await readiness.check();
      const ready = store && broker;
      return reply.status(ready ? 200 : 503).send({
        status: ready ? 'ready' : 'not ready',
        store: store ? 'ok' : 'unavailable',
        broker: broker ? 'ok' : 'unavailable',
      });
    },
  );
}
