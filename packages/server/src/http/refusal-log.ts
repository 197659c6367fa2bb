import type { FastifyReply, FastifyRequest } from 'fastify';
import { isGatehouseError } from '../errors.js';

/** The code of a refusal (a 4xx the client caused), or null for a failure logged elsewhere (5xx). */
export function refusalCode(err: unknown): string | null {
  if (isGatehouseError(err)) return err.status < 500 ? err.code : null;
  const e = err as { validation?: unknown; statusCode?: number; code?: string };
  if (e.validation) return 'INVALID_REQUEST';
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return 'PAYLOAD_TOO_LARGE';
  return e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? 'INVALID_REQUEST' : null;
}

/** A field of the parsed body, when the body is an object and the field a string (cut to 128). */
export function bodyField(request: FastifyRequest, name: string): string | undefined {
  const body = request.body as Record<string, unknown> | null | undefined;
  const value = body && typeof body === 'object' ? body[name] : undefined;
  return typeof value === 'string' ? value.slice(0, 128) : undefined;
}

/**
 * An `onError` hook logging a refused login or token request at `info`: the message, the
 * error code, the client address and the account or principal when the request names one —
 * never the password or token (the body is not logged).
 */
export function logRefusals(
  message: string,
  principalOf: (request: FastifyRequest) => string | undefined,
  extra: (request: FastifyRequest) => Record<string, unknown> = () => ({}),
) {
  return async (request: FastifyRequest, _reply: FastifyReply, err: unknown) => {
    const code = refusalCode(err);
    if (code === null) return;
    const principal = principalOf(request);
    request.log.info(
      {
        code,
        ip: request.ip,
        route: request.routeOptions.url ?? null,
        ...(principal ? { principal } : {}),
        ...extra(request),
      },
      message,
    );
  };
}

/**
 * Logs (at `info`) a refresh answered from the reuse grace period: the same answer again for a
 * token spent moments ago (a retried request), which the operator may want to see next to the
 * refusals of real reuse.
 */
export function logReuseGrace(request: FastifyRequest, issued: { reuseGrace?: boolean; principal: { id: string } }) {
  if (issued.reuseGrace)
    request.log.info(
      { principal: issued.principal.id, ip: request.ip, route: request.routeOptions.url },
      'refresh answered in the reuse grace period',
    );
}
