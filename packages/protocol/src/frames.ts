/** Frame shapes of the Gatehouse protocol (SPEC §4). */

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

/** A reply to a client request. */
export interface ReplyFrame<B = unknown> {
  type: string;
  id?: string | number;
  cmd_id?: number;
  code: number;
  body: B | null;
  err_msg: string;
  error?: string;
}

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

export type ServerEvent =
  | ConnectedFrame
  | { type: 'error'; code: number; body: null; error: string; err_msg: string }
  | { type: 'message'; code: 200; message: ChatMessage }
  | { type: 'offline_message'; code: 200; message: ChatMessage }
  | { type: 'offline_messages_complete'; code: 200; count: number; truncated: boolean }
  | { type: 'token_expiring'; code: 200; expires_at: number }
  | { type: 'kicked'; code: 200; reason: 'REPLACED' | 'REVOKED' | 'KICKED' | 'BLOCKED' }
  | { type: 'presence'; code: 200; user_id: string; online: boolean }
  | { type: 'session_waiting'; code: 200; session: unknown }
  | { type: 'pong'; code: 200; ts: number };

export const CONNECTED_AUTHENTICATED_MESSAGE = 'Connected and authenticated successfully';
export const CONNECTED_UNAUTHENTICATED_MESSAGE = 'Connected successfully. Please login or provide token.';
export const TOKEN_AUTH_FAILED_MESSAGE = 'Token authentication failed. Please login.';
/** `getuserinfo` with a token that does not belong to the socket's own login session. */
export const ILLEGAL_SOURCE_MESSAGE = 'Illegal Sources: this token does not belong to this connection.';
