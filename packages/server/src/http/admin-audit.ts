import type { FastifyRequest } from 'fastify';
import { isGatehouseError } from '../errors.js';
import { keyFingerprint } from '../logger.js';
import { isStoreFailure } from '../store/connection-failures.js';
import { isAdminKey } from './credentials.js';
import { refusalCode } from './refusal-log.js';
import type { RestApp } from './rest-types.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The admin action a route performs, as the audit log names it (`principal.kick`). */
    audit?: string;
  }
}

/** What a handler adds to its audit line (a created id, a count); never a credential. */
const notes = new WeakMap<FastifyRequest, Record<string, unknown>>();
const errors = new WeakMap<FastifyRequest, unknown>();

/** Adds fields to the request's audit line. */
export function noteAudit(request: FastifyRequest, fields: Record<string, unknown>): void {
  notes.set(request, { ...notes.get(request), ...fields });
}

/** The code the client was answered with (as `errorDetails` maps it), without logging the error again. */
function errorCode(err: unknown): string {
  if (isGatehouseError(err)) return err.code;
  return refusalCode(err) ?? (isStoreFailure(err) ? 'STORE_UNAVAILABLE' : 'INTERNAL');
}

/** The principal or object a request acts on: its `:id`, else the `?principal=` it filters by. */
function targetOf(request: FastifyRequest): string | undefined {
  const id = (request.params as { id?: unknown } | undefined)?.id;
  if (typeof id === 'string') return id.slice(0, 128);
  const principal = (request.query as { principal?: unknown } | undefined)?.principal;
  return typeof principal === 'string' ? principal.slice(0, 128) : undefined;
}

/**
 * The audit trail of `X-Admin-Key` requests, one `info` line per request once its answer is decided:
 * which key (its fingerprint, never the key), the action, its target, status and outcome.
 * A request with a wrong or missing key is logged as refused, with the fingerprint of the
 * key it presented. `only` limits the trail to some requests (groups: those made with the
 * admin key rather than an app key).
 */
export function auditAdminActions(
  app: RestApp,
  adminKey: string,
  only: (request: FastifyRequest) => boolean = () => true,
): void {
  app.addHook('onError', async (request, _reply, err) => {
    errors.set(request, err);
  });
  // Written once the answer is decided (onSend), not once it has left (onResponse): on Node 24 a
  // response whose caller hung up emits neither `finish` nor `error`, so onResponse never runs for
  // it, and an action the caller did not wait for would go unaudited.
  app.addHook('onSend', async (request, reply, payload) => {
    auditLine(request, reply.statusCode);
    return payload;
  });

  function auditLine(request: FastifyRequest, status: number): void {
    if (!only(request)) return;
    const header = request.headers['x-admin-key'];
    const presented = typeof header === 'string' ? header : undefined;
    const key = presented !== undefined ? keyFingerprint(presented) : null;
    const action = request.routeOptions.config?.audit ?? `${request.method} ${request.routeOptions.url ?? ''}`;
    const target = targetOf(request);
    const err = errors.get(request);
    const code = err === undefined ? null : errorCode(err);
    const base = { key, action, ...(target ? { target } : {}), status, ip: request.ip };
    if (!isAdminKey(adminKey, presented)) {
      request.log.info({ ...base, outcome: 'refused', code }, 'admin request refused');
      return;
    }
    request.log.info(
      { ...base, outcome: status < 400 ? 'ok' : 'failed', ...(code ? { code } : {}), ...notes.get(request) },
      'admin action',
    );
  }
}
