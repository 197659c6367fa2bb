import { normalizeDeviceType } from '@gatehouse/protocol';
import { Type } from '@sinclair/typebox';
import { subscribeWhenReachable } from '../../broker/broker-subscriptions.js';
import { GatehouseError } from '../../errors.js';
import type { Services } from '../../services.js';
import { auditAdminActions, noteAudit } from '../admin-audit.js';
import { ClusterConnectionsQuery } from '../cluster-connections.js';
import { adminKeyAuth, requireCredential } from '../credentials.js';
import type { RestApp } from '../rest-types.js';
import {
  AdminActionResult,
  AgentCreated,
  AppKeyCreated,
  AppKeyList,
  ConnectionList,
  ErrorBody,
  NodeStats,
} from '../schemas.js';

const PrincipalParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
const tags = ['admin'];
const security = [{ adminKey: [] }];
const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody };

/**
 * `X-Admin-Key` operations (SPEC §8), as one encapsulated plugin: the key check is an
 * `onRequest` hook of this plugin, so it guards exactly the routes registered here, under
 * whatever spelling of the URL the router matched (percent-encoded, any case it accepts).
 */
export async function adminRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  const { auth, gateway, store } = services;
  requireCredential(app, adminKeyAuth(services.config.adminKey));
  auditAdminActions(app, services.config.adminKey);

  // `Content-Type: application/json` with an empty body (a bare kick) means "no options".
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === '') return done(null, undefined);
    return json(request, text, done);
  });

  const cluster = new ClusterConnectionsQuery(
    services.broker,
    services.cluster,
    gateway.registry,
    services.nodeId,
    services.log,
  );
  // Like the node's own subscriptions, this one must not hold the start while the broker is
  // unreachable: listings answer from this node (and name the others missing) until it is up.
  void subscribeWhenReachable(
    services.broker,
    () => cluster.start(),
    () => cluster.stop(),
    services.log,
  );
  app.addHook('onClose', () => cluster.stop());

  /** The principal must exist (404 otherwise). */
  async function known(id: string): Promise<void> {
    if (!(await store.getPrincipal(id))) throw new GatehouseError('NOT_FOUND', `no principal "${id}"`);
  }

  app.get(
    '/api/v1/admin/connections',
    {
      config: { audit: 'connections.list' },
      schema: {
        summary: 'The sockets of every node, optionally of one principal',
        description:
          'Every live node is asked over the broker; nodes that did not answer within 1 s are listed in `missingNodes`.',
        tags,
        security,
        querystring: Type.Object({ principal: Type.Optional(Type.String({ maxLength: 128 })) }),
        response: { 200: ConnectionList, ...errors },
      },
    },
    async (request) => cluster.list(request.query.principal),
  );

  app.post(
    '/api/v1/admin/principals/:id/kick',
    {
      config: { audit: 'principal.kick' },
      schema: {
        summary: "Close a principal's sockets (of one device type) with 4410 KICKED",
        description: '`closed` counts the sockets open on every node at the time of the call (best effort).',
        tags,
        security,
        params: PrincipalParams,
        body: Type.Optional(Type.Object({ deviceType: Type.Optional(Type.String({ maxLength: 128 })) })),
        response: { 200: AdminActionResult, ...errors },
      },
      // The body is optional: a bare POST kicks every socket (validation would refuse `undefined`).
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const { id } = request.params;
      const given = request.body?.deviceType;
      // Counted as the gateways close: an alias names its canonical type.
      const deviceType = given ? normalizeDeviceType(given) : undefined;
      await known(id);
      const { connections, missingNodes } = await cluster.list(id);
      const closing = connections.filter((c) => !deviceType || c.device_type === deviceType);
      await services.control.publish({ op: 'kick', id, ...(deviceType ? { deviceType } : {}) });
      noteAudit(request, { ...(deviceType ? { deviceType } : {}), closed: closing.length });
      return { ok: true as const, closed: closing.length, missingNodes };
    },
  );

  for (const [action, summary, apply] of [
    ['revoke', 'Revoke every token of the principal and close its sockets', (id: string) => auth.revokePrincipal(id)],
    ['block', 'Block the principal: no login, no token, sockets closed', (id: string) => auth.setBlocked(id, true)],
    ['unblock', 'Unblock the principal', (id: string) => auth.setBlocked(id, false)],
  ] as const) {
    app.post(
      `/api/v1/admin/principals/:id/${action}`,
      {
        config: { audit: `principal.${action}` },
        schema: {
          summary,
          description:
            action === 'unblock'
              ? 'Closes nothing: `closed` is 0.'
              : '`closed` counts the sockets open on every node at the time of the call (best effort).',
          tags,
          security,
          params: PrincipalParams,
          response: { 200: AdminActionResult, ...errors },
        },
      },
      async (request) => {
        const { id } = request.params;
        await known(id);
        const { connections, missingNodes } =
          action === 'unblock' ? { connections: [], missingNodes: [] } : await cluster.list(id);
        if (!(await apply(id))) throw new GatehouseError('NOT_FOUND', `no principal "${id}"`);
        noteAudit(request, { closed: connections.length });
        return { ok: true as const, closed: connections.length, missingNodes };
      },
    );
  }

  app.post(
    '/api/v1/admin/agents',
    {
      config: { audit: 'agent.create' },
      schema: {
        summary: 'Create an agent (password account)',
        tags,
        security,
        body: Type.Object({
          username: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.@-]+$' }),
          password: Type.String({ minLength: 8, maxLength: 1024 }),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
          id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        }),
        response: { 201: AgentCreated, 409: ErrorBody, ...errors },
      },
    },
    async (request, reply) => {
      const { username, password, name, id } = request.body;
      noteAudit(request, { username });
      const agent = await auth.createAccount({
        kind: 'agent',
        username,
        password,
        ...(name ? { name } : {}),
        ...(id ? { id } : {}),
      });
      noteAudit(request, { target: agent.id });
      return reply.status(201).send(agent);
    },
  );

  app.post(
    '/api/v1/admin/app-keys',
    {
      config: { audit: 'app-key.create' },
      schema: {
        summary: 'Create an app key (shown once)',
        tags,
        security,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 201: AppKeyCreated, ...errors },
      },
    },
    async (request, reply) => {
      const created = await auth.createAppKey(request.body.name);
      // The app key's id and name name it in the trail; the key itself is shown once, to the caller.
      noteAudit(request, { target: created.id, name: request.body.name });
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/api/v1/admin/app-keys',
    {
      config: { audit: 'app-keys.list' },
      schema: { summary: 'List app keys (without the keys)', tags, security, response: { 200: AppKeyList, ...errors } },
    },
    async () => ({
      appKeys: (await store.listAppKeys()).map(({ id, name, createdAt }) => ({ id, name, createdAt })),
    }),
  );

  app.get(
    '/api/v1/admin/stats',
    {
      config: { audit: 'stats.read' },
      schema: { summary: 'Node and store counters', tags, security, response: { 200: NodeStats, ...errors } },
    },
    async () => {
      const byKind = { user: 0, agent: 0, customer: 0 };
      for (const conn of gateway.registry.all) if (conn.auth) byKind[conn.auth.principal.kind]++;
      return {
        node: services.nodeId,
        uptimeSeconds: Math.round((services.clock.now() - services.startedAt) / 1000),
        connections: {
          total: gateway.registry.size,
          unauthenticated: gateway.registry.unauthenticated,
          byKind,
        },
        principals: await store.countPrincipals(),
      };
    },
  );
}
