import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { redactHeaders, redactUrl } from '../logger.js';
import type { RestApp } from './rest-types.js';

/** Longest URL a request line keeps (the rest is cut: a log line, not a copy of the request). */
const MAX_LOGGED_URL = 1024;

/**
 * One `debug` line per answered request: method, the route pattern the router matched
 * (`/api/v1/admin/principals/:id/kick`), the URL with credential parameters shortened,
 * status, duration, client address and headers with credentials shortened. Fastify's own
 * request lines stay off: they would carry the raw URL (`?token=…`).
 */
export function logRequests(app: RestApp, log: Logger): void {
  // Node reads a socket's peer address lazily, and cannot once the peer has reset it: read it
  // on accept, so that a caller who hung up is still logged (and audited) with its address.
  app.server.on('connection', (socket: Socket) => void socket.remoteAddress);
  app.addHook('onResponse', async (request, reply) => {
    if (!log.isLevelEnabled('debug')) return;
    request.log.debug(
      {
        method: request.method,
        route: request.routeOptions.url ?? null,
        url: redactUrl(request.url.slice(0, MAX_LOGGED_URL)),
        status: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 10) / 10,
        ip: request.ip,
        headers: redactHeaders(request.headers),
      },
      'request',
    );
  });
}
