import { Type } from '@sinclair/typebox';
import { isGatehouseError } from '../../errors.js';
import { DeviceFieldSchema } from '../../gateway/device-fields.js';
import type { Services } from '../../services.js';
import { errorDetails, type RestApp } from '../rest-app.js';

const UserLoginBody = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 128 }),
  nickname: Type.String({ minLength: 1, maxLength: 128 }),
  avatar: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
  device: DeviceFieldSchema,
  extras: Type.Optional(Type.Unknown()),
});

/** `imUserVo.userStatus`: a number, as typed clients (`Integer`) parse it. */
const USER_STATUS = { normal: 1, blocked: 2 } as const;

/** The app-key open API: an app's server logs its IM users in (SPEC §2). Errors as `{code, msg}`. */
export function registerOpenApiUserRoutes(app: RestApp, services: Services): void {
  app.post(
    '/openapi/v1/user/login',
    {
      attachValidation: true,
      // Unreadable bodies (bad JSON, too large) are answered in the route's shape too.
      errorHandler: (err, _request, reply) => {
        const { status, code, message } = errorDetails(services.log, err);
        return reply.status(status).send({ code: status, msg: message, error: code });
      },
      schema: {
        summary: "Create or update the app's user and issue its token",
        security: [{ appKey: [] }],
        body: UserLoginBody,
      },
    },
    async (request, reply) => {
      try {
        // The key is checked before the body, so a bad key is always a 401.
        await services.auth.findApp(request.headers['x-app-key'] as string | undefined);
        if (request.validationError)
          return reply.status(400).send({ code: 400, msg: request.validationError.message, error: 'INVALID_REQUEST' });
        const body = request.body;
        const { tokens, principal } = await services.auth.appUserLogin(
          request.headers['x-app-key'] as string,
          { id: body.id, nickname: body.nickname, avatar: body.avatar ?? null, extras: body.extras },
          { deviceType: body.device },
        );
        return {
          code: 200,
          msg: 'success',
          data: {
            imUserVo: {
              id: principal.id,
              nickname: principal.name,
              avatar: principal.avatar,
              userStatus: principal.blocked ? USER_STATUS.blocked : USER_STATUS.normal,
              lastLoginTime: principal.lastLoginAt,
              extras: principal.extras ?? {},
            },
            token: `Bearer ${tokens.token}`,
          },
        };
      } catch (err) {
        if (!isGatehouseError(err)) throw err;
        return reply.status(err.status).send({ code: err.status, msg: err.message, error: err.code });
      }
    },
  );
}
