import { Type } from '@sinclair/typebox';
import { deviceTypeField } from '../../gateway/device-fields.js';
import type { Services } from '../../services.js';
import { auditAdminActions, noteAudit } from '../admin-audit.js';
import { accessTokenAuth, appOrAdminAuth, onlyKind, requireCredential } from '../credentials.js';
import type { RestApp } from '../rest-types.js';
import {
  ConversationList,
  ErrorBody,
  GroupCreated,
  HistoryPage,
  MemberList,
  Ok,
  SessionClaimed,
  SessionList,
  SessionOpened,
} from '../schemas.js';

const ConversationParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
const SeqString = Type.String({ pattern: '^[0-9]{1,15}$' });
const MAX_MEMBERS_PER_REQUEST = 10_000;
const MemberIds = Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
  minItems: 1,
  maxItems: MAX_MEMBERS_PER_REQUEST,
});
/**
 * The body limit of the routes that take a member list: the largest list the schema allows
 * (10,000 ids of 128 ASCII characters, quoted, with commas: ~1.3 MB) must fit, whatever
 * `server.bodyLimit` (64 KiB by default) says for every other route.
 */
const memberListBodyLimit = (bodyLimit: number) => Math.max(bodyLimit, MAX_MEMBERS_PER_REQUEST * 131 + 4096);

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 503: ErrorBody };

/** A member's view of conversations and history (SPEC §6): every route needs the caller's access token. */
export async function conversationRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  requireCredential(app, accessTokenAuth(services), 'access');
  const { messaging } = services;
  const tags = ['conversations'];

  app.get(
    '/api/v1/conversations',
    {
      schema: {
        summary: "The caller's conversations with unread counts for its device type",
        tags,
        security: [{ bearer: [] }],
        querystring: Type.Object({ device_type: Type.Optional(Type.String({ maxLength: 128 })) }),
        response: { 200: ConversationList, ...errors },
      },
    },
    async (request) => {
      const context = request.access;
      // The one device-type rule: an alias names its canonical type; empty means "the token's".
      const deviceType = deviceTypeField('device_type', request.query.device_type) ?? context.deviceType ?? 'unknown';
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
        tags,
        security: [{ bearer: [] }],
        params: ConversationParams,
        querystring: Type.Object({ before_seq: Type.Optional(SeqString), limit: Type.Optional(SeqString) }),
        response: { 200: HistoryPage, ...errors },
      },
    },
    async (request, reply) => {
      const context = request.access;
      const limit = Math.min(Number(request.query.limit ?? 50), 200) || 50;
      const before = request.query.before_seq === undefined ? null : Number(request.query.before_seq);
      const page = await messaging.history(context.principal.id, request.params.id, before, limit);
      // The stored bodies are already the wire JSON: a string payload is sent as is, not re-serialized.
      return reply
        .type('application/json')
        .send(`{"messages":[${page.messages.map((m) => m.body).join(',')}],"has_more":${page.hasMore}}` as never);
    },
  );
}

/** Groups (SPEC §6): managed by an app (`X-App-Key`, its own users only) or the operator (`X-Admin-Key`). */
export async function groupRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  requireCredential(app, appOrAdminAuth(services), 'manager');
  // Requests made with the admin key join the admin audit trail; app-key requests do not.
  auditAdminActions(app, services.config.adminKey, (request) => request.headers['x-admin-key'] !== undefined);
  const { messaging } = services;
  const tags = ['conversations'];

  app.post(
    '/api/v1/conversations',
    {
      config: { audit: 'group.create' },
      bodyLimit: memberListBodyLimit(services.config.server.bodyLimit),
      schema: {
        summary: 'Create a group (X-App-Key for its own users, or X-Admin-Key)',
        tags,
        security: [{ appKey: [] }, { adminKey: [] }],
        body: Type.Object({
          kind: Type.Literal('group'),
          name: Type.String({ minLength: 1, maxLength: 256 }),
          members: MemberIds,
        }),
        response: { 201: GroupCreated, ...errors },
      },
    },
    async (request, reply) => {
      const { appId } = request.manager;
      const group = await messaging.createGroup(request.body.name, request.body.members, appId);
      noteAudit(request, { target: group.id, members: request.body.members.length });
      return reply.status(201).send({
        id: group.id,
        kind: 'group' as const,
        name: group.name,
        members: await services.store.members(group.id),
      });
    },
  );

  app.post(
    '/api/v1/conversations/:id/members',
    {
      config: { audit: 'group.members.add' },
      bodyLimit: memberListBodyLimit(services.config.server.bodyLimit),
      schema: {
        summary: 'Add members to a group',
        tags,
        security: [{ appKey: [] }, { adminKey: [] }],
        params: ConversationParams,
        body: Type.Object({ members: MemberIds }),
        response: { 200: MemberList, ...errors },
      },
    },
    async (request) => {
      const { appId } = request.manager;
      return { members: await messaging.addMembers(request.params.id, request.body.members, appId) };
    },
  );

  app.delete(
    '/api/v1/conversations/:id/members/:principalId',
    {
      config: { audit: 'group.members.remove' },
      schema: {
        summary: 'Remove a member from a group',
        tags,
        security: [{ appKey: [] }, { adminKey: [] }],
        params: Type.Object({
          id: Type.String({ minLength: 1, maxLength: 128 }),
          principalId: Type.String({ minLength: 1, maxLength: 128 }),
        }),
        response: { 204: Type.Null({ description: 'Removed' }), ...errors },
      },
    },
    async (request, reply) => {
      const { appId } = request.manager;
      noteAudit(request, { member: request.params.principalId });
      await messaging.removeMember(request.params.id, request.params.principalId, appId);
      return reply.status(204).send(null);
    },
  );
}

/** Support sessions (SPEC §6): agents list, claim and close; customers may open one. Access token required. */
export async function sessionRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  requireCredential(app, accessTokenAuth(services), 'access');
  const { messaging } = services;
  const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
  const tags = ['sessions'];
  const agentsOnly = onlyKind('agent', 'only agents handle support sessions');

  app.get(
    '/api/v1/sessions',
    {
      schema: {
        summary: 'Support sessions: unclaimed (open) or claimed by the caller (mine)',
        tags,
        security: [{ bearer: [] }],
        querystring: Type.Object({ status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('mine')])) }),
        response: { 200: SessionList, ...errors },
      },
      preHandler: agentsOnly,
    },
    async (request) => {
      return {
        sessions: await messaging.listSessions(request.query.status ?? 'open', request.access.principal.id, 500),
      };
    },
  );

  app.post(
    '/api/v1/sessions/:id/claim',
    {
      schema: {
        summary: 'Claim a session: join it and receive its backlog; 409 if taken',
        tags,
        security: [{ bearer: [] }],
        params: Params,
        response: { 200: SessionClaimed, 409: ErrorBody, ...errors },
      },
      preHandler: agentsOnly,
    },
    async (request) => {
      const context = request.access;
      const session = await messaging.claim(
        context.principal,
        request.params.id,
        services.gateway.registry.ofPrincipal(context.principal.id),
      );
      return { session: await messaging.describeWithPresence(session) };
    },
  );

  app.post(
    '/api/v1/sessions/:id/close',
    {
      schema: {
        summary: 'Close a session (its agent only)',
        tags,
        security: [{ bearer: [] }],
        params: Params,
        response: { 200: Ok, ...errors },
      },
      preHandler: agentsOnly,
    },
    async (request) => {
      const context = request.access;
      await messaging.closeSession(context.principal, request.params.id);
      return { ok: true as const };
    },
  );

  app.post(
    '/api/v1/sessions',
    {
      schema: {
        summary: "The customer's open support session: 200 with the one it has, 201 with a new one",
        tags,
        security: [{ bearer: [] }],
        response: { 200: SessionOpened, 201: SessionOpened, ...errors },
      },
      preHandler: onlyKind('customer', 'only customers open sessions'),
    },
    async (request, reply) => {
      const principal = request.access.principal;
      await services.limits.supportSession(principal.id, request.ip);
      const { sessionId, created } = await messaging.customerSession(principal.id);
      return reply.status(created ? 201 : 200).send({ sessionId });
    },
  );
}
