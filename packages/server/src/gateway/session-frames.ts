import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  CloseCode,
  type HelloBody,
  ILLEGAL_SOURCE_MESSAGE,
  PROTOCOL_VERSION,
  type SessionBody,
} from '@gatehouse/protocol';
import type { Logger } from 'pino';
import type { AuthContext, AuthService } from '../auth/auth-service.js';
import { isWellFormedText } from '../auth/well-formed-text.js';
import type { Clock } from '../clock.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { isTicket } from '../tokens/token-service.js';
import type { Connection } from './connection.js';
import type { ConnectionRegistry } from './connection-registry.js';
import { deviceField, deviceTypeField } from './device-fields.js';
import { okReply, type RequestFrame, statusReply } from './replies.js';

/** What frame handlers may use of the gateway. */
export interface FrameContext {
  auth: AuthService;
  clock: Clock;
  log: Logger;
  registry: ConnectionRegistry;
  /** Binds a verified principal to the socket (slot claim, then `greet`, then replay) — see Gateway.attach. */
  attach(conn: Connection, auth: AuthContext, greet: () => void): Promise<void>;
  checkKind(conn: Connection, auth: AuthContext): void;
}

export type FrameHandler = (ctx: FrameContext, conn: Connection, frame: RequestFrame) => Promise<void> | void;

/** A field of the frame, or of its `body` object (the `cmd_id` and workerman shapes nest them). */
function field(frame: RequestFrame, name: string): unknown {
  const value = frame[name];
  if (value !== undefined && value !== null) return value;
  const body = frame.body;
  return body && typeof body === 'object' && Object.hasOwn(body, name)
    ? (body as Record<string, unknown>)[name]
    : undefined;
}

function stringField(frame: RequestFrame, name: string, required = true): string | null {
  const value = field(frame, name);
  if (value === undefined || value === null) {
    if (required) throw new GatehouseError('INVALID_REQUEST', `${name} is required`);
    return null;
  }
  if (typeof value !== 'string' || value.length > 4096 || value.includes('\u0000') || !isWellFormedText(value))
    throw new GatehouseError('INVALID_REQUEST', `${name} must be well-formed text without NUL characters`);
  return value;
}

/** Only for authenticated sockets (the router refuses the rest). */
const principalBody = (conn: Connection): SessionBody => ({
  user: (conn.auth as AuthContext).principal,
  session_id: conn.id,
  expires_at: (conn.auth as AuthContext).expiresAt,
});

function requireUnauthenticated(conn: Connection): void {
  if (conn.auth) throw new GatehouseError('INVALID_REQUEST', 'this socket is already authenticated; use refresh');
}

/** What a failed login or token auth over the socket leaves in the log (never the password or token). */
function logRefusal(ctx: FrameContext, conn: Connection, what: string, err: unknown, principal?: string): void {
  if (!isGatehouseError(err)) return;
  ctx.log.info(
    { conn: conn.id, ip: conn.ip, code: err.code, ...(principal ? { principal: principal.slice(0, 128) } : {}) },
    `${what} over the socket refused`,
  );
}

/**
 * `login`: username and `password` (alias `pwd`), flat or nested in `body` (where
 * connection-bound clients also put `from_uid`, which is accepted and not used: the account
 * is the one `username` names). The reply carries `status`/`msg` and, at top level, `token`
 * and `wstoken` — a token valid only on this socket (see `getuserinfo`).
 */
export const login: FrameHandler = async (ctx, conn, frame) => {
  requireUnauthenticated(conn);
  const username = stringField(frame, 'username') as string;
  const password = stringField(frame, 'password', false) ?? stringField(frame, 'pwd', false);
  if (password === null) throw new GatehouseError('INVALID_REQUEST', 'password (or pwd) is required');
  stringField(frame, 'from_uid', false);
  const deviceId = deviceField('device_id', field(frame, 'device_id')) ?? conn.deviceId;
  const platform = deviceTypeField('platform', field(frame, 'platform'));
  const deviceType = conn.declaredDeviceType ?? platform;
  let issued: Awaited<ReturnType<AuthService['passwordLogin']>>;
  try {
    issued = await ctx.auth.passwordLogin(username, password, conn.ip, { deviceType, deviceId });
  } catch (err) {
    logRefusal(ctx, conn, 'login', err, username);
    throw err;
  }
  // Another login or auth frame may have authenticated the socket while this one was checked.
  requireUnauthenticated(conn);
  const auth: AuthContext = {
    principal: issued.principal,
    sid: issued.sid,
    expiresAt: issued.expiresAt,
    deviceType,
    deviceId,
  };
  ctx.checkKind(conn, auth);
  conn.wsToken = randomBytes(24).toString('base64url');
  await ctx.attach(conn, auth, () =>
    conn.sendRaw(
      statusReply(
        frame,
        'login',
        'Login successful',
        {
          token: issued.token,
          ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
          expires_at: issued.expiresAt,
          session_id: conn.id,
          user: issued.principal,
        },
        { token: issued.token, wstoken: conn.wsToken },
      ),
    ),
  );
};

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * `getuserinfo` (connection-bound clients): answered like `whoami`, with `status: 1`, when
 * the socket is authenticated and `token` is this socket's `wstoken` or an access token of
 * this socket's own login session; on any other socket `status: 0`, code 401: a token taken
 * from one connection gives another nothing.
 */
export const getuserinfo: FrameHandler = async (ctx, conn, frame) => {
  const token = (stringField(frame, 'token') as string).replace(/^bearer\s+/i, '');
  const current = conn.auth;
  let belongs = false;
  if (current) {
    if (conn.wsToken && sameSecret(token, conn.wsToken)) belongs = true;
    // A ticket is never this socket's session token, and verifying it would spend it.
    else if (!isTicket(token)) {
      const presented = await ctx.auth.authenticate(token, conn.deviceId).catch(() => null);
      belongs = presented !== null && presented.sid === current.sid && conn.auth === current;
    }
  }
  if (!belongs) {
    ctx.log.info({ conn: conn.id, ip: conn.ip, principal: current?.principal.id }, 'getuserinfo from another source');
    throw new GatehouseError('TOKEN_INVALID', ILLEGAL_SOURCE_MESSAGE);
  }
  conn.sendRaw(statusReply(frame, 'getuserinfo', 'success', principalBody(conn)));
};

export const auth: FrameHandler = async (ctx, conn, frame) => {
  requireUnauthenticated(conn);
  const token = stringField(frame, 'token') as string;
  let context: AuthContext;
  try {
    context = await ctx.auth.authenticate(token.replace(/^bearer\s+/i, ''), conn.deviceId);
  } catch (err) {
    logRefusal(ctx, conn, 'auth', err);
    throw err;
  }
  requireUnauthenticated(conn);
  ctx.checkKind(conn, context);
  await ctx.attach(conn, context, () =>
    conn.sendRaw(
      okReply(frame, 'auth', { user: context.principal, session_id: conn.id, expires_at: context.expiresAt }),
    ),
  );
};

export const hello: FrameHandler = (_ctx, conn, frame) => {
  const body: HelloBody = { session_id: conn.id, version: PROTOCOL_VERSION, transport: 'websocket' };
  conn.send({
    type: 'hello',
    ...(frame.id !== undefined ? { id: frame.id } : {}),
    ...(frame.cmd_id !== undefined ? { cmd_id: frame.cmd_id } : {}),
    code: 200,
    ...body,
    body,
    err_msg: '',
  });
};

export const ping: FrameHandler = (ctx, conn, frame) => {
  conn.send({
    type: 'pong',
    ...(frame.id !== undefined ? { id: frame.id } : {}),
    ...(frame.cmd_id !== undefined ? { cmd_id: frame.cmd_id } : {}),
    code: 200,
    ts: ctx.clock.now(),
  });
};

/** Extends a live socket with a newer access token of the same principal. */
export const refresh: FrameHandler = async (ctx, conn, frame) => {
  const current = conn.auth as AuthContext;
  const token = (stringField(frame, 'token') as string).replace(/^bearer\s+/i, '');
  const next = await ctx.auth.authenticate(token, conn.deviceId);
  if (next.principal.id !== current.principal.id || next.principal.kind !== current.principal.kind)
    throw new GatehouseError('FORBIDDEN', 'the new token belongs to another principal');
  if (next.sid !== current.sid) ctx.registry.changeSid(conn, current.sid, next.sid);
  conn.auth = { ...current, sid: next.sid, expiresAt: next.expiresAt };
  conn.expiringNotified = false;
  conn.sendRaw(okReply(frame, 'refresh', { expires_at: next.expiresAt, session_id: conn.id }));
};

export const whoami: FrameHandler = (_ctx, conn, frame) => {
  conn.sendRaw(okReply(frame, 'whoami', principalBody(conn)));
};

/**
 * Revokes the login session, then replies: this socket closes 1000, its other sockets 4410.
 * While the revocation commits, this socket is out of the session's index so that the
 * session's kick (4410) reaches only the others.
 */
export const logout: FrameHandler = async (ctx, conn, frame) => {
  const auth = conn.auth as AuthContext;
  const aside = `logout:${conn.id}`;
  ctx.registry.changeSid(conn, auth.sid, aside);
  conn.auth = { ...auth, sid: aside };
  try {
    await ctx.auth.revokeSession(auth.sid);
  } catch (err) {
    ctx.registry.changeSid(conn, aside, auth.sid);
    conn.auth = auth;
    throw err;
  }
  conn.sendRaw(okReply(frame, 'logout', null));
  conn.close(CloseCode.NORMAL, 'normal');
};
