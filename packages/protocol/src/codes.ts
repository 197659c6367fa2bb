/**
 * Error codes and close codes as data: one table, shared by the server, the SDK and
 * docs/protocol.md (which a test checks against this table so the two cannot drift).
 */

/** What a client should do after a close with a given code. */
export type CloseAdvice = 'stop' | 'reconnect' | 'reconnect-slowly' | 'reauthenticate' | 'report-bug';

export interface CloseCodeInfo {
  readonly code: number;
  readonly reasons: readonly string[];
  readonly advice: CloseAdvice;
  readonly description: string;
}

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  TRY_AGAIN_LATER: 1013,
  SERVICE_RESTART: 1012,
  INVALID_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  TIMEOUT: 4408,
  REPLACED: 4409,
  REVOKED: 4410,
  PAYLOAD_TOO_LARGE: 4413,
  RATE_LIMITED: 4429,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const CLOSE_CODES: readonly CloseCodeInfo[] = [
  { code: 1000, reasons: ['normal'], advice: 'stop', description: 'Normal close (for example after `logout`).' },
  { code: 1001, reasons: ['SHUTTING_DOWN'], advice: 'reconnect', description: 'Server shutting down.' },
  { code: 1012, reasons: ['RESTARTING'], advice: 'reconnect', description: 'Server restarting.' },
  {
    code: 1013,
    reasons: ['SERVER_BUSY', 'STORE_UNAVAILABLE'],
    advice: 'reconnect-slowly',
    description:
      'Server at capacity, or the offline replay failed in the store (it runs again on the next connection).',
  },
  {
    code: 4400,
    reasons: ['INVALID_REQUEST'],
    advice: 'report-bug',
    description: 'Repeated malformed frames.',
  },
  {
    code: 4401,
    reasons: ['MISSING_TOKEN', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'TOKEN_REVOKED', 'LOGIN_FAILED'],
    advice: 'reauthenticate',
    description: 'Get a new token (refresh or re-login), then reconnect.',
  },
  {
    code: 4403,
    reasons: ['FORBIDDEN', 'ORIGIN_NOT_ALLOWED', 'DEVICE_MISMATCH'],
    advice: 'stop',
    description: 'Not allowed here; reconnecting will not help.',
  },
  {
    code: 4408,
    reasons: ['AUTH_TIMEOUT', 'HEARTBEAT_TIMEOUT'],
    advice: 'reconnect',
    description: 'Did not authenticate or answer heartbeats in time.',
  },
  {
    code: 4409,
    reasons: ['REPLACED'],
    advice: 'stop',
    description: 'A newer connection of the same device type took over: do not fight it.',
  },
  {
    code: 4410,
    reasons: ['REVOKED', 'KICKED', 'BLOCKED'],
    advice: 'stop',
    description: 'Session revoked, kicked or blocked: send the person to log in.',
  },
  {
    code: 4413,
    reasons: ['PAYLOAD_TOO_LARGE'],
    advice: 'report-bug',
    description: 'A frame exceeded the size limit.',
  },
  {
    code: 4429,
    reasons: ['RATE_LIMITED'],
    advice: 'reconnect-slowly',
    description: 'Too many frames or connections.',
  },
];

export interface ErrorCodeInfo {
  readonly code: ErrorCode;
  /** HTTP status for REST responses and handshake rejections; also the frame `code`. */
  readonly status: number;
  /** Close code used when this error ends a socket. */
  readonly close: number | null;
  readonly description: string;
}

export const ERROR_CODES = [
  { code: 'MISSING_TOKEN', status: 401, close: 4401, description: 'No credential was presented.' },
  {
    code: 'TOKEN_INVALID',
    status: 401,
    close: 4401,
    description: 'Malformed, unsigned, wrongly signed, wrong issuer/audience, or not an access token.',
  },
  {
    code: 'TOKEN_EXPIRED',
    status: 401,
    close: 4401,
    description: 'The token (or refresh token) is past its expiry; the message always contains `token expired`.',
  },
  {
    code: 'TOKEN_REVOKED',
    status: 401,
    close: 4401,
    description: 'The login session was logged out, the principal revoked, or the ticket already used.',
  },
  { code: 'LOGIN_FAILED', status: 401, close: 4401, description: 'Unknown account or wrong password.' },
  {
    code: 'FORBIDDEN',
    status: 403,
    close: 4403,
    description: 'This kind of principal may not use this endpoint or action.',
  },
  { code: 'ORIGIN_NOT_ALLOWED', status: 403, close: 4403, description: 'The `Origin` header is not on the allowlist.' },
  {
    code: 'DEVICE_MISMATCH',
    status: 403,
    close: 4403,
    description: 'The token is bound to another device id (`did`).',
  },
  {
    code: 'INVALID_REQUEST',
    status: 400,
    close: 4400,
    description: 'Malformed request or frame, or two credentials that differ.',
  },
  { code: 'NOT_MEMBER', status: 403, close: null, description: 'Not a member of the conversation.' },
  { code: 'NOT_FOUND', status: 404, close: null, description: 'No such resource.' },
  {
    code: 'CONFLICT',
    status: 409,
    close: null,
    description: 'The resource belongs to someone else or was already taken.',
  },
  { code: 'PAYLOAD_TOO_LARGE', status: 413, close: 4413, description: 'Body or frame over the size limit.' },
  { code: 'RATE_LIMITED', status: 429, close: 4429, description: 'Too many requests; see `Retry-After`.' },
  {
    code: 'SERVER_BUSY',
    status: 503,
    close: 1013,
    description:
      'Connection, unauthenticated-socket or handshakes-in-progress cap reached (`Retry-After`), or the node is shutting down or waiting for its store at start.',
  },
  {
    code: 'STORE_UNAVAILABLE',
    status: 503,
    close: null,
    description:
      'The store failed: on a send, retry with the same `client_msg_id`; on a handshake (503, `Retry-After`, close 1013), reconnect later.',
  },
  {
    code: 'INTERNAL',
    status: 500,
    close: null,
    description: 'Unexpected server error (details only in the server log).',
  },
] as const satisfies readonly { code: string; status: number; close: number | null; description: string }[];

export type ErrorCode = (typeof ERROR_CODES)[number]['code'];

/**
 * The message of every refusal for an expired access token (REST 401s, the handshake's body
 * and `X-WebSocket-Error-Message`, validate-token, the frame before a 4401 close). Clients
 * refresh on `code === 401 && err_msg.includes('token expired')`, so these words must stay.
 */
export const TOKEN_EXPIRED_MESSAGE = 'token expired: get a new token (refresh or log in again)';
/** The first frame on an endpoint that allows login over the socket, when the token has expired. */
export const TOKEN_EXPIRED_LOGIN_MESSAGE = 'Token authentication failed: token expired. Please login.';

const byCode = new Map<string, ErrorCodeInfo>(ERROR_CODES.map((e) => [e.code, e]));

export function errorInfo(code: ErrorCode): ErrorCodeInfo {
  return byCode.get(code) as ErrorCodeInfo;
}

/** Reasons that are not error codes but still end a socket. */
export const CloseReason = {
  AUTH_TIMEOUT: 'AUTH_TIMEOUT',
  HEARTBEAT_TIMEOUT: 'HEARTBEAT_TIMEOUT',
  REPLACED: 'REPLACED',
  REVOKED: 'REVOKED',
  KICKED: 'KICKED',
  BLOCKED: 'BLOCKED',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
} as const;

/** The client's rule for a close code (unknown codes: reconnect with backoff). */
export function closeAdvice(code: number): CloseAdvice {
  return CLOSE_CODES.find((c) => c.code === code)?.advice ?? 'reconnect';
}
