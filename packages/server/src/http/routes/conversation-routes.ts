import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { GatehouseError } from '../../errors.js';
import type { Services } from '../../services.js';
import { type RestApp, requireAccessToken, requireAdmin } from '../rest-app.js';

const ConversationParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
const SeqString = Type.String({ pattern: '^[0-9]{1,15}$' });
const MemberIds = Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 10_000 });

/** Conversations, history, groups (SPEC §6). */
export function registerConversationRoutes(app: RestApp, services: Services): void {
  const { messaging } = services;

  /** An app key (its own users only) or the admin key may manage groups; returns the app id or null for admin. */
  async function groupManager(request: FastifyRequest): Promise<string | null> {
    if (request.headers['x-admin-key'] !== undefined) {
      requireAdmin(services.config, request);
      return null;
    }
    return (await services.auth.findApp(request.headers['x-app-key'] as string | undefined)).id;
  }

  app.get(
    '/api/v1/conversations',
    {
      schema: {
        summary: "The caller's conversations with unread counts for its device type",
        security: [{ bearer: [] }],
        querystring: Type.Object({ device_type: Type.Optional(Type.String({ maxLength: 128 })) }),
      },
    },
    async (request) => {
      const context = await requireAccessToken(services, request);
      const deviceType = request.query.device_type ?? context.deviceType ?? 'unknown';
      const summaries = await services.store.conversationsOf(context.principal.id, deviceType);
      return {
        device_type: deviceType,
        conversations: summaries.map(({ conversation: c, cursor, unread }) => ({
          id: c.id,
          kind: c.kind,
          name: c.name,
          last_seq: c.lastSeq,
          cursor,
          unread,
          ...(c.kind === 'support' ? { status: c.status, customer_id: c.customerId, agent_id: c.agentId } : {}),
        })),
      };
    },
  );

  app.get(
    '/api/v1/conversations/:id/messages',
    {
      schema: {
        summary: 'History page: messages below before_seq, oldest first',
        security: [{ bearer: [] }],
        params: ConversationParams,
        querystring: Type.Object({ before_seq: Type.Optional(SeqString), limit: Type.Optional(SeqString) }),
      },
    },
    async (request, reply) => {
      const context = await requireAccessToken(services, request);
      const limit = Math.min(Number(request.query.limit ?? 50), 200) || 50;
      const before = request.query.before_seq === undefined ? null : Number(request.query.before_seq);
      const page = await messaging.history(context.principal.id, request.params.id, before, limit);
      return reply
        .type('application/json')
        .send(`{"messages":[${page.messages.map((m) => m.body).join(',')}],"has_more":${page.hasMore}}`);
    },
  );

  app.post(
    '/api/v1/conversations',
    {
      schema: {
        summary: 'Create a group (X-App-Key for its own users, or X-Admin-Key)',
        security: [{ appKey: [] }, { adminKey: [] }],
        body: Type.Object({
          kind: Type.Literal('group'),
          name: Type.String({ minLength: 1, maxLength: 256 }),
          members: MemberIds,
        }),
      },
    },
    async (request, reply) => {
      const appId = await groupManager(request);
      const group = await messaging.createGroup(request.body.name, request.body.members, appId);
      return reply.status(201).send({
        id: group.id,
        kind: group.kind,
        name: group.name,
        members: await services.store.members(group.id),
      });
    },
  );

  app.post(
    '/api/v1/conversations/:id/members',
    {
      schema: {
        summary: 'Add members to a group',
        security: [{ appKey: [] }, { adminKey: [] }],
        params: ConversationParams,
        body: Type.Object({ members: MemberIds }),
      },
    },
    async (request) => {
      const appId = await groupManager(request);
      return { members: await messaging.addMembers(request.params.id, request.body.members, appId) };
    },
  );

  app.delete(
    '/api/v1/conversations/:id/members/:principalId',
    {
      schema: {
        summary: 'Remove a member from a group',
        security: [{ appKey: [] }, { adminKey: [] }],
        params: Type.Object({
          id: Type.String({ minLength: 1, maxLength: 128 }),
          principalId: Type.String({ minLength: 1, maxLength: 128 }),
        }),
      },
    },
    async (request, reply) => {
      const appId = await groupManager(request);
      await messaging.removeMember(request.params.id, request.params.principalId, appId);
      return reply.status(204).send();
    },
  );
}

/** Support sessions (SPEC §6): list, claim, close; customers may open a new one. */
export function registerSessionRoutes(app: RestApp, services: Services): void {
  const { messaging } = services;
  const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

  async function requireAgent(request: FastifyRequest) {
    const context = await requireAccessToken(services, request);
    if (context.principal.kind !== 'agent')
      throw new GatehouseError('FORBIDDEN', 'only agents handle support sessions');
    return context;
  }

  app.get(
    '/api/v1/sessions',
    {
      schema: {
        summary: 'Support sessions: unclaimed (open) or claimed by the caller (mine)',
        security: [{ bearer: [] }],
        querystring: Type.Object({ status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('mine')])) }),
      },
    },
    async (request) => {
      const context = await requireAgent(request);
      return { sessions: await messaging.listSessions(request.query.status ?? 'open', context.principal.id, 500) };
    },
  );

  app.post(
    '/api/v1/sessions/:id/claim',
    {
      schema: {
        summary: 'Claim a session: join it and receive its backlog; 409 if taken',
        security: [{ bearer: [] }],
        params: Params,
      },
    },
    async (request) => {
      const context = await requireAgent(request);
      const session = await messaging.claim(
        context.principal,
        request.params.id,
        services.gateway.registry.ofPrincipal(context.principal.id),
      );
      return { session: messaging.describeSession(session) };
    },
  );

  app.post(
    '/api/v1/sessions/:id/close',
    { schema: { summary: 'Close a session (its agent only)', security: [{ bearer: [] }], params: Params } },
    async (request) => {
      const context = await requireAgent(request);
      await messaging.closeSession(context.principal, request.params.id);
      return { ok: true };
    },
  );

  app.post(
    '/api/v1/sessions',
    {
      schema: {
        summary: "The customer's open support session: 200 with the one it has, 201 with a new one",
        security: [{ bearer: [] }],
      },
    },
    async (request, reply) => {
      const context = await requireAccessToken(services, request);
      if (context.principal.kind !== 'customer') throw new GatehouseError('FORBIDDEN', 'only customers open sessions');
      await services.limits.supportSession(context.principal.id, request.ip);
      const { sessionId, created } = await messaging.customerSession(context.principal.id);
      return reply.status(created ? 201 : 200).send({ sessionId });
    },
  );
}
