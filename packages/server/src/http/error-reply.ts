import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { RateLimitedError } from '../auth/rate-limits.js';
import { isGatehouseError } from '../errors.js';
import { isStoreFailure } from '../store/connection-failures.js';

/** What an error means for a client: status, code and a message safe to show (never a stack). */
export interface ErrorDetails {
  status: number;
  code: string;
  message: string;
}

/**
 * Maps any error to its status and code, in one place for every route: store failures
 * become the retryable 503 STORE_UNAVAILABLE (as failed writes do), unexpected errors
 * 500 INTERNAL; the details of both go to the log only.
 */
export function errorDetails(log: Logger, err: unknown): ErrorDetails {
  if (isGatehouseError(err)) return { status: err.status, code: err.code, message: err.message };
  const e = err as { validation?: unknown; statusCode?: number; code?: string; message?: string };
  if (e.validation) return { status: 400, code: 'INVALID_REQUEST', message: e.message ?? 'invalid request' };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'request body is too large' };
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)
    return { status: e.statusCode, code: 'INVALID_REQUEST', message: e.message ?? 'bad request' };
  if (isStoreFailure(err)) {
    log.warn({ err }, 'request failed: the store is unavailable');
    return { status: 503, code: 'STORE_UNAVAILABLE', message: 'the store is unavailable; retry shortly' };
  }
  log.error({ err }, 'request failed');
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

/** Sets `Retry-After` where the error has one (rate limits; a store failure: 1 s). */
function retryAfter(reply: FastifyReply, err: unknown, details: ErrorDetails): void {
  if (err instanceof RateLimitedError) reply.header('Retry-After', String(err.retryAfterSeconds));
  else if (details.code === 'STORE_UNAVAILABLE') reply.header('Retry-After', '1');
}

/** Replies `{error, message}` with the error's 4xx/5xx status; never a stack trace. */
export function sendError(reply: FastifyReply, log: Logger, err: unknown): FastifyReply {
  const details = errorDetails(log, err);
  retryAfter(reply, err, details);
  return reply.status(details.status).send({ error: details.code, message: details.message });
}

/**
 * An error handler for a route group whose clients parse another error shape
 * (`{code, msg}`, `{code, body, err_msg}`): same mapping, the group's shape.
 */
export function shapedErrorHandler(log: Logger, shape: (details: ErrorDetails) => Record<string, unknown>) {
  return (err: unknown, _request: unknown, reply: FastifyReply) => {
    const details = errorDetails(log, err);
    retryAfter(reply, err, details);
    return reply.status(details.status).send(shape(details));
  };
}
