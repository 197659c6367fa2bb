import { type TProperties, type TSchema, Type } from '@sinclair/typebox';

/**
 * Response schemas of the REST API (SPEC §2, §6, §8), served in /openapi.json.
 *
 * Fastify serializes a response through its schema, and the serializer drops properties a
 * schema does not name. Every object here therefore allows additional properties: the
 * schema documents the fields clients parse, and a field added to a response later is
 * never silently lost on the wire.
 */
const Obj = <T extends TProperties>(properties: T, options: { description?: string; examples?: unknown[] } = {}) =>
  Type.Object(properties, { additionalProperties: true, ...options });
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Millis = (description: string) => Type.Integer({ description: `${description} (milliseconds since the epoch)` });

export const ErrorBody = Obj(
  {
    error: Type.String({ description: 'Stable error code, e.g. TOKEN_INVALID, INVALID_REQUEST, STORE_UNAVAILABLE' }),
    message: Type.String({ description: 'What is wrong, for a person' }),
  },
  {
    description: 'An error: a stable code and a message',
    examples: [{ error: 'MISSING_TOKEN', message: 'Authorization: Bearer <token> is required' }],
  },
);

export const PrincipalInfo = Obj({
  id: Type.String(),
  kind: Type.Union([Type.Literal('user'), Type.Literal('agent'), Type.Literal('customer')]),
  name: Type.String(),
});

export const LoginResult = Obj(
  {
    token: Type.String({ description: 'Access token (JWT)' }),
    refresh_token: Type.Optional(Type.String({ description: 'Only for kinds that refresh (users)' })),
    expiresAt: Millis('Access token expiry'),
    user: PrincipalInfo,
  },
  {
    description: 'Logged in',
    examples: [{ token: 'eyJhbGciOi…', expiresAt: 1767225600000, user: { id: 'alice', kind: 'agent', name: 'Alice' } }],
  },
);

export const CustomerTokenResult = Obj(
  {
    customerId: Type.String({ format: 'uuid' }),
    token: Type.String(),
    refreshToken: Type.String(),
    sessionId: Type.String({ description: "The customer's support conversation" }),
    expiresAt: Millis('Access token expiry'),
  },
  {
    description: 'A new customer, its tokens and its support session',
    examples: [
      {
        customerId: '0d4c9c57-3b0e-4a43-9d55-8a0f3b1c2d3e',
        token: 'eyJhbGciOi…',
        refreshToken: 'grt_…',
        sessionId: 'sup_…',
        expiresAt: 1767225600000,
      },
    ],
  },
);

export const CustomerResult = Obj(
  {
    id: Type.String({ format: 'uuid' }),
    token: Type.String(),
    refreshToken: Type.String(),
    sessionId: Type.String(),
    expiresAt: Millis('Access token expiry'),
  },
  { description: 'A new customer, its tokens and its support session' },
);

export const CustomerRefreshResult = Obj(
  {
    token: Type.String(),
    refreshToken: Type.String({ description: 'The next refresh token: the one presented is used up' }),
    expiresAt: Millis('Access token expiry'),
  },
  { description: 'New customer tokens' },
);

export const ValidateTokenResult = Obj(
  {
    valid: Type.Boolean(),
    type: Type.Optional(Type.String({ description: 'The principal kind, when the token could be read' })),
    userId: Type.Optional(Type.String({ description: 'Users and agents' })),
    customerId: Type.Optional(Type.String({ description: 'Customers' })),
    name: Type.Optional(Type.String()),
    channel: Type.Optional(Type.String({ description: 'Customers' })),
    expiresAt: Type.Optional(Millis('Access token expiry')),
    error: Type.Optional(
      Type.Union([Type.Literal('TOKEN_EXPIRED'), Type.Literal('TOKEN_INVALID'), Type.Literal('TOKEN_REVOKED')]),
    ),
    message: Type.Optional(Type.String()),
  },
  {
    description: 'Always HTTP 200 for a well-formed call: `valid` says the verdict',
    examples: [
      { valid: true, type: 'user', userId: 'u1', name: 'Ann', expiresAt: 1767225600000 },
      { valid: false, type: 'user', error: 'TOKEN_EXPIRED', message: 'token expired' },
    ],
  },
);

/** `/api/refresh-token` answers in the `{code, body, err_msg}` envelope, errors included. */
export const RefreshEnvelope = Obj(
  {
    code: Type.Integer({ description: 'The HTTP status again' }),
    body: Nullable(
      Obj({
        access_token: Type.String(),
        refresh_token: Type.String(),
        expires_at: Millis('Access token expiry'),
      }),
    ),
    err_msg: Type.String({ description: 'Empty on success' }),
    error: Type.Optional(Type.String({ description: 'Error code, on failure' })),
  },
  {
    description: 'The `{code, body, err_msg}` envelope',
    examples: [
      {
        code: 200,
        body: { access_token: 'eyJhbGciOi…', refresh_token: 'grt_…', expires_at: 1767225600000 },
        err_msg: '',
      },
      { code: 401, body: null, error: 'TOKEN_INVALID', err_msg: 'refresh token is not valid' },
    ],
  },
);

/** The open API answers in the `{code, msg, data}` envelope. */
export const OpenApiLoginResult = Obj(
  {
    code: Type.Integer(),
    msg: Type.String(),
    data: Obj({
      imUserVo: Obj({
        id: Type.String(),
        nickname: Type.String(),
        avatar: Nullable(Type.String()),
        userStatus: Type.Integer({ description: '1 = normal, 2 = blocked', enum: [1, 2] }),
        lastLoginTime: Nullable(Millis('Last login')),
        extras: Type.Unknown({ description: 'What the app sent as `extras`; `{}` when none were given' }),
      }),
      token: Type.String({ description: '"Bearer " followed by the access token' }),
    }),
  },
  {
    description: 'The user and its token',
    examples: [
      {
        code: 200,
        msg: 'success',
        data: {
          imUserVo: {
            id: 'u1',
            nickname: 'Ann',
            avatar: null,
            userStatus: 1,
            lastLoginTime: 1767225600000,
            extras: {},
          },
          token: 'Bearer eyJhbGciOi…',
        },
      },
    ],
  },
);

export const OpenApiError = Obj(
  { code: Type.Integer(), msg: Type.String(), error: Type.String() },
  {
    description: 'An error in the open API shape',
    examples: [{ code: 401, msg: 'missing or unknown X-App-Key', error: 'TOKEN_INVALID' }],
  },
);

export const TicketResult = Obj(
  {
    ticket: Type.String({ description: 'Single use, on any node' }),
    expiresIn: Type.Integer({ description: 'Seconds until the ticket expires' }),
    expiresAt: Millis('Ticket expiry'),
  },
  { description: 'A connect ticket', examples: [{ ticket: 'gtk_…', expiresIn: 30, expiresAt: 1767225630000 }] },
);

export const ConversationList = Obj(
  {
    device_type: Type.String({ description: 'The device type the unread counts are for' }),
    conversations: Type.Array(
      Obj({
        id: Type.String(),
        kind: Type.Union([Type.Literal('direct'), Type.Literal('group'), Type.Literal('support')]),
        name: Nullable(Type.String()),
        last_seq: Type.Integer(),
        cursor: Type.Integer({ description: 'Delivered-up-to seq of this device type' }),
        unread: Type.Integer(),
        status: Type.Optional(Nullable(Type.String({ description: 'Support only' }))),
        customer_id: Type.Optional(Nullable(Type.String())),
        agent_id: Type.Optional(Nullable(Type.String())),
      }),
    ),
  },
  { description: "The caller's conversations" },
);

export const Message = Obj({
  id: Type.String(),
  conversation_id: Type.String(),
  seq: Type.Integer(),
  from: PrincipalInfo,
  text: Type.Optional(Type.String()),
  data: Type.Optional(Type.Unknown()),
  ts: Millis('Stored at'),
});

export const HistoryPage = Obj(
  { messages: Type.Array(Message), has_more: Type.Boolean() },
  { description: 'A page of history, oldest first' },
);

export const GroupCreated = Obj(
  {
    id: Type.String(),
    kind: Type.Literal('group'),
    name: Nullable(Type.String()),
    members: Type.Array(Type.String()),
  },
  { description: 'The new group' },
);

export const MemberList = Obj({ members: Type.Array(Type.String()) }, { description: 'The members now' });

const supportSessionFields = {
  id: Type.String(),
  status: Nullable(Type.String({ description: 'open, claimed or closed' })),
  customer_id: Nullable(Type.String()),
  customer: Type.Optional(PrincipalInfo),
  agent_id: Nullable(Type.String()),
  last_seq: Type.Integer(),
  created_at: Millis('Opened'),
  waiting_since: Nullable(Millis('When the customer first wrote (the session entered the queue); null before')),
  customer_online: Type.Optional(
    Type.Boolean({ description: 'Whether the customer is connected now (session lists and the claim answer)' }),
  ),
};
export const SupportSession = Obj(supportSessionFields);

/** An entry of `GET /api/v1/sessions`: the session plus what an agent's queue shows. */
const SupportListing = Obj({
  ...supportSessionFields,
  channel: Nullable(Type.String({ description: "The customer's channel" })),
  first_message: Nullable(Type.String({ description: 'The first message, cut to 200 characters' })),
});

export const SessionList = Obj({ sessions: Type.Array(SupportListing) }, { description: 'Support sessions' });
export const SessionClaimed = Obj({ session: SupportSession }, { description: 'The claimed session' });
export const SessionOpened = Obj({ sessionId: Type.String() }, { description: "The customer's open session" });
export const Ok = Obj({ ok: Type.Literal(true) }, { description: 'Done' });

const ConnectionInfo = Obj({
  session_id: Type.String(),
  principal: Nullable(PrincipalInfo),
  kind: Nullable(Type.String({ description: 'The principal kind; null before authentication' })),
  device_type: Nullable(Type.String()),
  device_id: Nullable(Type.String()),
  client_id: Nullable(Type.String()),
  endpoint: Type.String(),
  ip: Type.String(),
  node: Type.String(),
  connected_at: Millis('Connected since'),
  expires_at: Nullable(Millis('Credential expiry')),
});

export const ConnectionList = Obj(
  {
    connections: Type.Array(ConnectionInfo),
    nodes: Type.Array(Type.String(), { description: 'Nodes whose sockets are listed' }),
    missingNodes: Type.Array(Type.String(), { description: 'Live nodes that did not answer in time' }),
  },
  { description: 'Sockets of every node' },
);

export const AdminActionResult = Obj(
  {
    ok: Type.Literal(true),
    closed: Type.Integer({ description: 'Sockets closed, on every node (best effort)' }),
    missingNodes: Type.Array(Type.String(), { description: 'Live nodes that did not answer: not counted' }),
  },
  { description: 'Done, with the number of sockets closed', examples: [{ ok: true, closed: 2, missingNodes: [] }] },
);

export const AgentCreated = Obj(PrincipalInfo.properties, { description: 'The new agent' });

export const AppKeyCreated = Obj(
  {
    id: Type.String(),
    name: Type.String(),
    key: Type.String({ description: 'Shown only in this answer' }),
    createdAt: Millis('Created'),
  },
  { description: 'The new app key (the key is shown only here)' },
);

export const AppKeyList = Obj(
  {
    appKeys: Type.Array(Obj({ id: Type.String(), name: Type.String(), createdAt: Millis('Created') })),
  },
  { description: 'App keys, without the keys' },
);

const PerKind = Obj({ user: Type.Integer(), agent: Type.Integer(), customer: Type.Integer() });

export const NodeStats = Obj(
  {
    node: Type.String(),
    uptimeSeconds: Type.Integer(),
    connections: Obj({ total: Type.Integer(), unauthenticated: Type.Integer(), byKind: PerKind }),
    principals: PerKind,
  },
  { description: 'Counters of this node and the store' },
);

export const Health = Obj({ status: Type.Literal('ok') }, { description: 'Alive' });

export const Readiness = Obj(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('not ready')]),
    store: Type.String({ description: '"ok" or "unavailable" (details are in the server log only)' }),
    broker: Type.String({ description: '"ok" or "unavailable"' }),
  },
  {
    description: 'Ready or not, and which part is unavailable',
    examples: [{ status: 'ready', store: 'ok', broker: 'ok' }],
  },
);
