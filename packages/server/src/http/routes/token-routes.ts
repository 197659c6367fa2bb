import { Type } from '@sinclair/typebox';
import { ms } from '../../config.js';
import type { Services } from '../../services.js';
import { accessTokenAuth, requireCredential } from '../credentials.js';
import { shapedErrorHandler } from '../error-reply.js';
import { logRefusals, logReuseGrace } from '../refusal-log.js';
import type { RestApp } from '../rest-types.js';
import { ErrorBody, RefreshEnvelope, TicketResult } from '../schemas.js';

/**
 * `POST /api/refresh-token` (SPEC §2): the refresh token in the body is the credential.
 * Existing clients parse `{code, body, err_msg}` here, errors included, so this plugin's
 * error handler answers every failure (bad JSON, too large, validation, refusal) in that shape.
 */
export async function refreshTokenRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  app.setErrorHandler(
    shapedErrorHandler(services.log, ({ status, code, message }) => ({
      code: status,
      body: null,
      error: code,
      err_msg: message,
    })),
  );

  app.post(
    '/api/refresh-token',
    {
      config: { cors: 'public' },
      // The refresh token names no principal the log may show before it is verified.
      onError: logRefusals('refresh refused', () => undefined),
      schema: {
        summary: 'Rotate a refresh token: new access and refresh tokens; a reused one revokes the session',
        tags: ['tokens'],
        body: Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) }),
        response: { 200: RefreshEnvelope, 400: RefreshEnvelope, 401: RefreshEnvelope, 503: RefreshEnvelope },
      },
    },
    async (request) => {
      const issued = await services.auth.refresh(request.body.refresh_token);
      logReuseGrace(request, issued);
      return {
        code: 200,
        body: {
          access_token: issued.token,
          refresh_token: issued.refreshToken as string,
          expires_at: issued.expiresAt,
        },
        err_msg: '',
      };
    },
  );
}

/** Connect tickets and logout (SPEC §1–§2): every route here needs the caller's access token. */
export async function accessTokenRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  requireCredential(app, accessTokenAuth(services), 'access');
  const security = [{ bearer: [] }];
  const tags = ['tokens'];
  const errors = { 401: ErrorBody, 403: ErrorBody, 503: ErrorBody };

  app.post(
    '/api/v1/ws-ticket',
    {
      schema: {
        summary: 'A single-use connect ticket for the caller',
        description:
          'Valid for `tokens.ticketTtl` (30 s by default), once, on any node. `expiresIn` is in seconds, `expiresAt` in milliseconds since the epoch.',
        tags,
        security,
        response: { 200: TicketResult, ...errors },
      },
    },
    async (request) => {
      const expiresAt = services.clock.now() + ms(services.config, 'tokens.ticketTtl');
      const { ticket, expiresIn } = await services.auth.issueTicket(request.access);
      return { ticket, expiresIn, expiresAt };
    },
  );

  app.post(
    '/api/v1/auth/logout',
    {
      schema: {
        summary: "Revoke the caller's login session; its sockets close with 4410",
        tags,
        security,
        response: { 204: Type.Null({ description: 'Logged out' }), ...errors },
      },
    },
    async (request, reply) => {
      await services.auth.revokeSession(request.access.sid);
      return reply.status(204).send(null);
    },
  );
}
