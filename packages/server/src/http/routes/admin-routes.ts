import { Type } from '@sinclair/typebox';
import { GatehouseError } from '../../errors.js';
import type { Connection } from '../../gateway/connection.js';
import type { Services } from '../../services.js';
import { type RestApp, requireAdmin } from '../rest-app.js';

const PrincipalParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

const describeConnection = (conn: Connection, node: string) => ({
  session_id: conn.id,
  principal: conn.auth?.principal ?? null,
  device_type: conn.deviceType,
  device_id: conn.deviceId,
  client_id: conn.clientId,
  endpoint: conn.endpoint.path,
  ip: conn.ip,
  node,
  connected_at: conn.openedAt,
  expires_at: conn.auth?.expiresAt ?? null,
});

/** `X-Admin-Key` operations (SPEC §8). */
export function registerAdminRoutes(app: RestApp, services: Services): void {
  const { auth, gateway, config } = services;
  const security = [{ adminKey: [] }];

  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/api/v1/admin/')) requireAdmin(config, request);
  });

  app.get(
    '/api/v1/admin/connections',
    {
      schema: {
        summary: "This node's connections, optionally of one principal",
        security,
        querystring: Type.Object({ principal: Type.Optional(Type.String({ maxLength: 128 })) }),
      },
    },
    async (request) => {
      const { principal } = request.query;
      const conns = principal ? gateway.registry.ofPrincipal(principal) : [...gateway.registry.all];
      return { connections: conns.filter((c) => !c.closed).map((c) => describeConnection(c, services.nodeId)) };
    },
  );

  app.post(
    '/api/v1/admin/principals/:id/kick',
    {
      schema: {
        summary: "Close a principal's sockets (of one device type) with 4410 KICKED",
        security,
        params: PrincipalParams,
        body: Type.Optional(Type.Object({ deviceType: Type.Optional(Type.String({ maxLength: 128 })) })),
      },
      // The body is optional: a bare POST kicks every socket (validation would refuse `undefined`).
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const deviceType = request.body?.deviceType;
      await services.control.publish({ op: 'kick', id: request.params.id, ...(deviceType ? { deviceType } : {}) });
      return { ok: true };
    },
  );

  for (const [action, summary, apply] of [
    ['revoke', 'Revoke every token of the principal and close its sockets', (id: string) => auth.revokePrincipal(id)],
    ['block', 'Block the principal: no login, no token, sockets closed', (id: string) => auth.setBlocked(id, true)],
    ['unblock', 'Unblock the principal', (id: string) => auth.setBlocked(id, false)],
  ] as const) {
    app.post(
      `/api/v1/admin/principals/:id/${action}`,
      { schema: { summary, security, params: PrincipalParams } },
      async (request) => {
        if (!(await apply(request.params.id)))
          throw new GatehouseError('NOT_FOUND', `no principal "${request.params.id}"`);
        return { ok: true };
      },
    );
  }

  app.post(
    '/api/v1/admin/agents',
    {
      schema: {
        summary: 'Create an agent (password account)',
        security,
        body: Type.Object({
          username: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.@-]+$' }),
          password: Type.String({ minLength: 8, maxLength: 1024 }),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
          id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        }),
      },
    },
    async (request, reply) => {
      const { username, password, name, id } = request.body;
      const agent = await auth.createAccount({
        kind: 'agent',
        username,
        password,
        ...(name ? { name } : {}),
        ...(id ? { id } : {}),
      });
      return reply.status(201).send(agent);
    },
  );

  app.post(
    '/api/v1/admin/app-keys',
    {
      schema: {
        summary: 'Create an app key (shown once)',
        security,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }) }),
      },
    },
    async (request, reply) => reply.status(201).send(await auth.createAppKey(request.body.name)),
  );

  app.get(
    '/api/v1/admin/app-keys',
    { schema: { summary: 'List app keys (without the keys)', security } },
    async () => ({
      appKeys: (await services.store.listAppKeys()).map(({ id, name, createdAt }) => ({ id, name, createdAt })),
    }),
  );

  app.get('/api/v1/admin/stats', { schema: { summary: 'Node and store counters', security } }, async () => {
    const byKind: Record<string, number> = { user: 0, agent: 0, customer: 0 };
    for (const conn of gateway.registry.all)
      if (conn.auth) byKind[conn.auth.principal.kind] = (byKind[conn.auth.principal.kind] ?? 0) + 1;
    return {
      node: services.nodeId,
      uptimeSeconds: Math.round((services.clock.now() - services.startedAt) / 1000),
      connections: {
        total: gateway.registry.size,
        unauthenticated: gateway.registry.unauthenticated,
        byKind,
      },
      principals: await services.store.countPrincipals(),
    };
  });
}
