import type { ErrorCode, ErrorEvent, ServerReply } from '@gatehouse/protocol';
import { errorInfo } from '@gatehouse/protocol';

/** A parsed client frame: `type` is resolved (from `cmd_id` if need be); other fields are unchecked. */
export interface RequestFrame {
  type: string;
  id?: string | number;
  cmd_id?: number;
  [field: string]: unknown;
}

function echo(request: RequestFrame | null): { id?: string | number; cmd_id?: number } {
  const out: { id?: string | number; cmd_id?: number } = {};
  if (request?.id !== undefined) out.id = request.id;
  if (request?.cmd_id !== undefined) out.cmd_id = request.cmd_id;
  return out;
}

/**
 * Reply types read by connection-bound (PHP workerman-style) clients, which decide by
 * `status` (1 success, 0 failure) and show `msg`: their replies carry both beside `code`/`err_msg`.
 */
const STATUS_REPLY_TYPES: ReadonlySet<string> = new Set(['login', 'getuserinfo']);

/** A successful reply; `type` and `body` must be a reply shape of the protocol (ServerReply). */
export function okReply<T extends ServerReply['type']>(
  request: RequestFrame,
  type: T,
  body: Extract<ServerReply, { type: T }>['body'],
): string {
  return JSON.stringify({ type, ...echo(request), code: 200, body, err_msg: '' });
}

export function errorReply(
  request: RequestFrame | null,
  type: string,
  code: ErrorCode,
  message: string,
  status?: number,
): string {
  return JSON.stringify({
    type,
    ...echo(request),
    code: status ?? errorInfo(code).status,
    ...(STATUS_REPLY_TYPES.has(type) ? { status: 0, msg: message } : {}),
    body: null,
    error: code,
    err_msg: message,
  });
}

/** A success reply with `status: 1` and `msg` (see STATUS_REPLY_TYPES), and extra top-level fields. */
export function statusReply(
  request: RequestFrame,
  type: string,
  msg: string,
  body: unknown,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({ type, ...echo(request), code: 200, status: 1, msg, ...extra, body, err_msg: '' });
}

/** The unsolicited `error` event (a bad token on open, a malformed frame without an id). */
export function errorEvent(code: ErrorCode, message: string, status?: number): string {
  const frame: ErrorEvent = {
    type: 'error',
    code: status ?? errorInfo(code).status,
    body: null,
    error: code,
    err_msg: message,
  };
  return JSON.stringify(frame);
}
