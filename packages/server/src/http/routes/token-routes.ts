import { Type } from '@sinclair/typebox';
import { isGatehouseError } from '../../errors.js';
import type { Services } from '../../services.js';
import { errorDetails, type RestApp, requireAccessToken } from '../rest-app.js';

/** Refresh rotation, connect tickets and logout (SPEC §1–§2). */
export function registerTokenRoutes(app: RestApp, services: Services): void {
  // Existing clients parse `{code, body, err_msg}` here, errors included, so this route shapes its own.
  app.post(
    '/api/refresh-token',
    {
      attachValidation: true,
      // Unreadable bodies (bad JSON, too large) are answered in the route's shape too.
      errorHandler: (err, _request, reply) => {
        const { status, code, message } = errorDetails(services.log, err);
        return reply.status(status).send({ code: status, body: null, error: code, err_msg: message });
      },
      schema: {
        summary: 'Rotate a refresh token: new access and refresh tokens; a reused one revokes the session',
        body: Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) }),
      },
    },
    async (request, reply) => {
      if (request.validationError)
        return reply
          .status(400)
          .send({ code: 400, body: null, error: 'INVALID_REQUEST', err_msg: 'refresh_token is required' });
      try {
        const issued = await services.auth.refresh(request.body.refresh_token);
        return {
          code: 200,
          body: { access_token: issued.token, refresh_token: issued.refreshToken, expires_at: issued.expiresAt },
          err_msg: '',
        };
      } catch (err) {
        if (!isGatehouseError(err)) throw err;
        return reply.status(err.status).send({ code: err.status, body: null, error: err.code, err_msg: err.message });
      }
    },
  );

  app.post(
    '/api/v1/ws-ticket',
    { schema: { summary: 'A single-use connect ticket (30 s) for the caller', security: [{ bearer: [] }] } },
    async (request) => {
      const context = await requireAccessToken(services, request);
      return services.auth.issueTicket(context);
    },
  );

  app.post(
    '/api/v1/auth/logout',
    {
      schema: { summary: "Revoke the caller's login session; its sockets close with 4410", security: [{ bearer: [] }] },
    },
    async (request, reply) => {
      const context = await requireAccessToken(services, request);
      await services.auth.revokeSession(context.sid);
      return reply.status(204).send();
    },
  );
}
