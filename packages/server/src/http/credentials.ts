import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AuthContext } from '../auth/auth-service.js';
import { GatehouseError } from '../errors.js';
import type { Services } from '../services.js';
import type { AccessClaims } from '../tokens/token-service.js';
import type { RestApp } from './rest-types.js';

/** A verified access token: who it speaks for, its session and its claims. */
export type AccessContext = AuthContext & { claims: AccessClaims };

/** Who manages a group: an app (its own users only) or the operator (`appId` null). */
export interface GroupManager {
  appId: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `accessTokenAuth` before the handler of every route of a bearer-protected plugin. */
    access: AccessContext;
    /** Set by `appKeyAuth`: the app whose `X-App-Key` the request carries. */
    callerApp: { id: string; name: string };
    /** Set by `appOrAdminAuth`. */
    manager: GroupManager;
  }
}

/** The `Authorization: Bearer` token of a request, or null. */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^bearer\s+(.+)$/i.exec(header);
  return match ? (match[1] as string).trim() : null;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Whether `given` is the admin key; constant time, and an empty configured key matches nothing. */
export function isAdminKey(adminKey: string, given: unknown): boolean {
  if (adminKey.length === 0 || typeof given !== 'string') return false;
  // Digests have equal lengths, so the comparison leaks neither the key nor its length.
  return timingSafeEqual(digest(given), digest(adminKey));
}

/** A credential check run as an `onRequest` hook: throws a 401/403 GatehouseError, or sets the request's caller. */
export type CredentialHook = (request: FastifyRequest) => Promise<void>;

const wrongAdminKey = () => new GatehouseError('TOKEN_INVALID', 'missing or wrong X-Admin-Key', { status: 401 });

/**
 * `onRequest` hook: the request must carry the admin key in `X-Admin-Key`, or, when
 * `bearer` is set, as `Authorization: Bearer <admin key>` (Prometheus' `bearer_token`).
 */
export function adminKeyAuth(adminKey: string, options: { bearer?: boolean } = {}): CredentialHook {
  return async (request) => {
    const header = request.headers['x-admin-key'];
    if (header !== undefined) {
      if (!isAdminKey(adminKey, header)) throw wrongAdminKey();
      return;
    }
    if (options.bearer && isAdminKey(adminKey, bearerToken(request))) return;
    throw wrongAdminKey();
  };
}

/** `onRequest` hook: verifies the access token and sets `request.access`. */
export function accessTokenAuth(services: Services): CredentialHook {
  return async (request) => {
    const token = bearerToken(request);
    if (!token) throw new GatehouseError('MISSING_TOKEN', 'Authorization: Bearer <token> is required');
    request.access = await services.auth.authenticateRequest(token);
  };
}

/** `onRequest` hook: resolves `X-App-Key` and sets `request.app`. */
export function appKeyAuth(services: Services): CredentialHook {
  return async (request) => {
    request.callerApp = await services.auth.findApp(request.headers['x-app-key'] as string | undefined);
  };
}

/** `onRequest` hook: an `X-Admin-Key` (checked when present) or else an `X-App-Key`; sets `request.manager`. */
export function appOrAdminAuth(services: Services): CredentialHook {
  const admin = adminKeyAuth(services.config.adminKey);
  return async (request) => {
    if (request.headers['x-admin-key'] !== undefined) {
      await admin(request);
      request.manager = { appId: null };
      return;
    }
    request.manager = { appId: (await services.auth.findApp(request.headers['x-app-key'] as string | undefined)).id };
  };
}

/** A `preHandler` that admits only access tokens of one principal kind (403 otherwise). */
export function onlyKind(kind: AccessContext['principal']['kind'], message: string) {
  return async (request: FastifyRequest) => {
    if (request.access.principal.kind !== kind) throw new GatehouseError('FORBIDDEN', message);
  };
}

/**
 * Guards every route of the plugin `app` (an encapsulated context) with `hook`, and declares
 * the request property the hook sets, so that routes read the verified caller from it.
 */
export function requireCredential(
  app: RestApp,
  hook: CredentialHook,
  decoration?: 'access' | 'callerApp' | 'manager',
): void {
  if (decoration && !app.hasRequestDecorator(decoration)) app.decorateRequest(decoration, null as never);
  app.addHook('onRequest', hook);
}
