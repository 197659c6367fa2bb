/** Frame shapes of the Gatehouse protocol (SPEC §4): what clients send, what the server sends back. */

export const PROTOCOL_VERSION = 1;
/** Subprotocol the server selects when a client offers it (optionally beside `bearer.<jwt>`). */
export const SUBPROTOCOL = 'gatehouse.v1';
export const BEARER_SUBPROTOCOL_PREFIX = 'bearer.';

export type PrincipalKind = 'user' | 'agent' | 'customer';
export const PRINCIPAL_KINDS: readonly PrincipalKind[] = ['user', 'agent', 'customer'];

/** Numeric aliases a client may send as `cmd_id` instead of `type`. */
export const CMD_IDS: Readonly<Record<number, ClientFrameType>> = {
  1001: 'login',
  1002: 'auth',
  1003: 'refresh',
  1004: 'logout',
  1005: 'ping',
  2001: 'message',
  2002: 'ack',
  2003: 'history',
};

export const CLIENT_FRAME_TYPES = [
  'login',
  'auth',
  'hello',
  'refresh',
  'ping',
  'message',
  'ack',
  'history',
  'whoami',
  'getuserinfo',
  'logout',
] as const;
export type ClientFrameType = (typeof CLIENT_FRAME_TYPES)[number];

/** Frames an unauthenticated socket may send. */
export const UNAUTHENTICATED_FRAME_TYPES: ReadonlySet<string> = new Set(['login', 'auth', 'hello', 'ping']);

export interface PrincipalInfo {
  id: string;
  kind: PrincipalKind;
  name: string;
}

/** Fields every client request may carry; the reply echoes them. */
export interface RequestEcho {
  id?: string | number;
  cmd_id?: number;
}

// ---- client → server -------------------------------------------------------------------

export interface LoginFrame extends RequestEcho {
  type: 'login';
  username: string;
  password: string;
  device_id?: string;
  platform?: string;
}
export interface AuthFrame extends RequestEcho {
  type: 'auth';
  /** An access token or a connect ticket. */
  token: string;
}
export interface HelloFrame extends RequestEcho {
  type: 'hello';
  version?: number;
}
export interface RefreshFrame extends RequestEcho {
  type: 'refresh';
  token: string;
}
export interface PingFrame extends RequestEcho {
  type: 'ping';
}
export interface MessageFrame extends RequestEcho {
  type: 'message';
  conversation_id?: string;
  to?: string;
  text?: string;
  data?: unknown;
  client_msg_id?: string;
}
export interface AckFrame extends RequestEcho {
  type: 'ack';
  conversation_id: string;
  seq: number;
}
export interface HistoryFrame extends RequestEcho {
  type: 'history';
  conversation_id: string;
  before_seq?: number;
  limit?: number;
}
export interface WhoamiFrame extends RequestEcho {
  type: 'whoami';
}
export interface LogoutFrame extends RequestEcho {
  type: 'logout';
}

export type ClientFrame =
  | LoginFrame
  | AuthFrame
  | HelloFrame
  | RefreshFrame
  | PingFrame
  | MessageFrame
  | AckFrame
  | HistoryFrame
  | WhoamiFrame
  | LogoutFrame;

// ---- server → client: replies --------------------------------------------------------------

/** A reply to a client request: `type` is the request's (`ack` for `message`). */
export interface ReplyFrame<T extends string = string, B = unknown> extends RequestEcho {
  type: T;
  code: number;
  body: B | null;
  err_msg: string;
  error?: string;
}

export interface SessionBody {
  user: PrincipalInfo;
  session_id: string;
  expires_at: number;
}
export interface LoginBody extends SessionBody {
  token: string;
  refresh_token?: string;
}
export interface RefreshBody {
  expires_at: number;
  session_id: string;
}
/** The reply to `message`: stored, with its place in the conversation. */
export interface AckBody {
  message_id: string;
  conversation_id: string;
  seq: number;
  ts: number;
}
export interface HistoryBody {
  messages: ChatMessage[];
  has_more: boolean;
}
export interface HelloBody {
  session_id: string;
  version: number;
  transport: 'websocket';
}

/** What each request type is answered with (reply type and body). */
export interface ReplyBodies {
  login: LoginBody;
  auth: SessionBody;
  hello: HelloBody;
  refresh: RefreshBody;
  message: AckBody;
  ack: { conversation_id: string; seq: number };
  history: HistoryBody;
  whoami: SessionBody;
  logout: null;
}

export type ServerReply =
  | ReplyFrame<'login', LoginBody>
  | ReplyFrame<'auth', SessionBody>
  | (ReplyFrame<'hello', HelloBody> & Partial<HelloBody>)
  | ReplyFrame<'refresh', RefreshBody>
  | ReplyFrame<'ack', AckBody | { conversation_id: string; seq: number }>
  | ReplyFrame<'history', HistoryBody>
  | ReplyFrame<'whoami', SessionBody>
  | ReplyFrame<'logout', null>;

// ---- server → client: events ---------------------------------------------------------------

export interface ConnectedFrame {
  type: 'connected';
  code: 200;
  body: {
    message: string;
    session_id: string;
    user?: PrincipalInfo;
    expires_at?: number;
  };
  err_msg: '';
}

export interface ChatMessage {
  id: string;
  conversation_id: string;
  seq: number;
  from: PrincipalInfo;
  text: string | null;
  data?: unknown;
  ts: number;
  client_msg_id?: string;
}

/** A support session as events and the sessions list describe it. */
export interface SupportSession {
  id: string;
  status: 'open' | 'claimed' | 'closed' | string;
  customer_id: string | null;
  customer?: PrincipalInfo | null;
  agent_id: string | null;
  last_seq?: number;
  created_at?: number;
  [field: string]: unknown;
}

export type KickReason = 'REPLACED' | 'REVOKED' | 'KICKED' | 'BLOCKED';

export interface ErrorEvent {
  type: 'error';
  code: number;
  body: null;
  error: string;
  err_msg: string;
}
export interface MessageEvent {
  type: 'message';
  code: 200;
  message: ChatMessage;
}
export interface OfflineMessageEvent {
  type: 'offline_message';
  code: 200;
  message: ChatMessage;
}
export interface OfflineMessagesCompleteEvent {
  type: 'offline_messages_complete';
  code: 200;
  count: number;
  truncated: boolean;
  truncated_conversations?: string[];
}
export interface TokenExpiringEvent {
  type: 'token_expiring';
  code: 200;
  expires_at: number;
}
export interface KickedEvent {
  type: 'kicked';
  code: 200;
  reason: KickReason;
}
export interface PresenceEvent {
  type: 'presence';
  code: 200;
  user_id: string;
  online: boolean;
}
export interface SessionWaitingEvent {
  type: 'session_waiting';
  code: 200;
  session: SupportSession;
  message?: ChatMessage;
}
export interface SessionClaimedEvent {
  type: 'session_claimed';
  code: 200;
  session_id: string;
  agent: { id: string; name: string };
}
export interface SessionClosedEvent {
  type: 'session_closed';
  code: 200;
  session_id: string;
}
export interface PongEvent extends RequestEcho {
  type: 'pong';
  code: 200;
  ts: number;
}

/** Frames the server sends without being asked (plus `pong`, which answers `ping`). */
export type ServerEvent =
  | ConnectedFrame
  | ErrorEvent
  | MessageEvent
  | OfflineMessageEvent
  | OfflineMessagesCompleteEvent
  | TokenExpiringEvent
  | KickedEvent
  | PresenceEvent
  | SessionWaitingEvent
  | SessionClaimedEvent
  | SessionClosedEvent
  | PongEvent;

/** Everything a server may put on the wire. */
export type ServerFrame = ServerEvent | ServerReply;

export const CONNECTED_AUTHENTICATED_MESSAGE = 'Connected and authenticated successfully';
export const CONNECTED_UNAUTHENTICATED_MESSAGE = 'Connected successfully. Please login or provide token.';
export const TOKEN_AUTH_FAILED_MESSAGE = 'Token authentication failed. Please login.';
/** `getuserinfo` with a token that does not belong to the socket's own login session. */
export const ILLEGAL_SOURCE_MESSAGE = 'Illegal Sources: this token does not belong to this connection.';
