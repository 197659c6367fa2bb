import { Type } from '@sinclair/typebox';
import { DeviceFieldSchema } from '../../gateway/device-fields.js';
import type { Services } from '../../services.js';
import { appKeyAuth, requireCredential } from '../credentials.js';
import { shapedErrorHandler } from '../error-reply.js';
import { bodyField, logRefusals } from '../refusal-log.js';
import type { RestApp } from '../rest-types.js';
import { OpenApiError, OpenApiLoginResult } from '../schemas.js';

const UserLoginBody = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 128 }),
  nickname: Type.String({ minLength: 1, maxLength: 128 }),
  avatar: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
  device: DeviceFieldSchema,
  extras: Type.Optional(Type.Unknown()),
});

/** `userStatus` as the open API documents it: a number (SPEC §2). */
export const UserStatus = { normal: 1, blocked: 2 } as const;

/**
 * The app-key open API: an app's server logs its IM users in (SPEC §2). The `X-App-Key`
 * hook runs on request, before the body is read, so a bad key is always a 401; every error
 * is answered as `{code, msg, error}`.
 */
export async function openApiRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  requireCredential(app, appKeyAuth(services), 'callerApp');
  // A wrong X-App-Key is refused before the body is read: then no user id is known.
  app.addHook(
    'onError',
    logRefusals(
      'open API login refused',
      (request) => bodyField(request, 'id'),
      (request) => (request.callerApp ? { app: request.callerApp.id } : {}),
    ),
  );
  app.setErrorHandler(
    shapedErrorHandler(services.log, ({ status, code, message }) => ({ code: status, msg: message, error: code })),
  );
  const errors = { 400: OpenApiError, 401: OpenApiError, 403: OpenApiError, 409: OpenApiError, 503: OpenApiError };

  app.post(
    '/openapi/v1/user/login',
    {
      schema: {
        summary: "Create or update the app's user and issue its token",
        tags: ['open-api'],
        security: [{ appKey: [] }],
        body: UserLoginBody,
        response: { 200: OpenApiLoginResult, ...errors },
      },
    },
    async (request) => {
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
            userStatus: principal.blocked ? UserStatus.blocked : UserStatus.normal,
            lastLoginTime: principal.lastLoginAt,
            extras: principal.extras ?? {},
          },
          token: `Bearer ${tokens.token}`,
        },
      };
    },
  );
}
