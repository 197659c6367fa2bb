import { CloseCode, type HelloBody, PROTOCOL_VERSION, type SessionBody } from '@gatehouse/protocol';
import type { AuthContext, AuthService } from '../auth/auth-service.js';
import type { Clock } from '../clock.js';
import { GatehouseError } from '../errors.js';
import type { Connection } from './connection.js';
import type { ConnectionRegistry } from './connection-registry.js';
import { okReply, type RequestFrame } from './replies.js';

/** What frame handlers may use of the gateway. */
export interface FrameContext {
  auth: AuthService;
  clock: Clock;
  registry: ConnectionRegistry;
  /** Binds a verified principal to the socket (slot claim, replay) — see Gateway.attach. */
  attach(conn: Connection, auth: AuthContext): Promise<void>;
  checkKind(conn: Connection, auth: AuthContext): void;
}

export type FrameHandler = (ctx: FrameContext, conn: Connection, frame: RequestFrame) => Promise<void> | void;

function stringField(frame: RequestFrame, name: string, required = true): string | null {
  const nested =
    frame.body && typeof frame.body === 'object' ? (frame.body as Record<string, unknown>)[name] : undefined;
  const value = frame[name] ?? nested;
  if (value === undefined || value === null) {
    if (required) throw new GatehouseError('INVALID_REQUEST', `${name} is required`);
    return null;
  }
  if (typeof value !== 'string' || value.length > 4096 || value.includes('\u0000'))
    throw new GatehouseError('INVALID_REQUEST', `${name} must be a string without NUL characters`);
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

export const login: FrameHandler = async (ctx, conn, frame) => {
  requireUnauthenticated(conn);
  const username = stringField(frame, 'username') as string;
  const password = stringField(frame, 'password') as string;
  const deviceId = stringField(frame, 'device_id', false) ?? conn.deviceId;
  const platform = stringField(frame, 'platform', false);
  const issued = await ctx.auth.passwordLogin(username, password, conn.ip, {
    deviceType: conn.declaredDeviceType ?? platform,
    deviceId,
  });
  // Another login or auth frame may have authenticated the socket while this one was checked.
  requireUnauthenticated(conn);
  const auth: AuthContext = {
    principal: issued.principal,
    sid: issued.sid,
    expiresAt: issued.expiresAt,
    deviceType: conn.declaredDeviceType ?? platform,
    deviceId,
  };
  ctx.checkKind(conn, auth);
  conn.sendRaw(
    okReply(frame, 'login', {
      token: issued.token,
      ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
      expires_at: issued.expiresAt,
      session_id: conn.id,
      user: issued.principal,
    }),
  );
  await ctx.attach(conn, auth);
};

export const auth: FrameHandler = async (ctx, conn, frame) => {
  requireUnauthenticated(conn);
  const token = stringField(frame, 'token') as string;
  const context = await ctx.auth.authenticate(token.replace(/^bearer\s+/i, ''), conn.deviceId);
  requireUnauthenticated(conn);
  ctx.checkKind(conn, context);
  conn.sendRaw(okReply(frame, 'auth', { user: context.principal, session_id: conn.id, expires_at: context.expiresAt }));
  await ctx.attach(conn, context);
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

/** Revokes the login session: this socket closes 1000, its other sockets 4410. */
export const logout: FrameHandler = async (ctx, conn, frame) => {
  const sid = (conn.auth as AuthContext).sid;
  conn.sendRaw(okReply(frame, 'logout', null));
  conn.close(CloseCode.NORMAL, 'normal');
  await ctx.auth.revokeSession(sid);
};
