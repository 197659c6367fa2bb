import { type Static, Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { GatehouseError } from '../../errors.js';
import { DeviceFieldSchema as DeviceField } from '../../gateway/device-fields.js';
import type { Services } from '../../services.js';
import { bearerToken } from '../credentials.js';
import { bodyField, logRefusals, logReuseGrace } from '../refusal-log.js';
import type { RestApp } from '../rest-types.js';
import {
  CustomerRefreshResult,
  CustomerResult,
  CustomerTokenResult,
  ErrorBody,
  LoginResult,
  ValidateTokenResult,
} from '../schemas.js';

const Id = Type.String({ minLength: 1, maxLength: 128 });

const LoginBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 128 }),
  password: Type.String({ minLength: 1, maxLength: 1024 }),
  device_type: Type.Optional(DeviceField),
  device_id: Type.Optional(DeviceField),
});

const CustomerTokenBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  channel: Type.String({ minLength: 1, maxLength: 64 }),
  email: Type.Optional(Type.String({ maxLength: 256 })),
  phone: Type.Optional(Type.String({ maxLength: 64 })),
  channelUserId: Type.Optional(Type.String({ maxLength: 128 })),
});

const CustomerBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  channel: Type.String({ minLength: 1, maxLength: 64 }),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

const CustomerRefreshBody = Type.Object({
  // Optional in the schema so that a call without it is a 401 (SPEC §2), not a 400.
  refreshToken: Type.Optional(Type.String({ maxLength: 512 })),
  customerId: Type.Optional(Id),
  channel: Type.Optional(Type.String({ maxLength: 64 })),
});

const tags = ['public'];
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 429: ErrorBody, 503: ErrorBody };
/** Browsers may call these from any origin when `server.cors.origins` lists `*`. */
const config = { cors: 'public' as const };

/**
 * `/api/v1/public/*` and `/api/v1/customers*`: logins and anonymous customer tokens (SPEC §2).
 * No credential guards this plugin: each route's credential is in its body (password,
 * refresh token) or there is none (rate-limited per IP).
 */
export async function publicRoutes(app: RestApp, { services }: { services: Services }): Promise<void> {
  const { auth } = services;

  app.post(
    '/api/v1/public/login',
    {
      onError: logRefusals('login refused', (request) => bodyField(request, 'username')),
      schema: {
        summary: 'Password login (agents and operator-managed users)',
        tags,
        body: LoginBody,
        response: { 200: LoginResult, ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      const issued = await auth.passwordLogin(body.username, body.password, request.ip, {
        deviceType: body.device_type,
        deviceId: body.device_id,
      });
      return {
        token: issued.token,
        ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
        expiresAt: issued.expiresAt,
        user: issued.principal,
      };
    },
  );

  async function newCustomer(name: string, channel: string, extras: Record<string, unknown>, ip: string) {
    const { customer, tokens } = await auth.createCustomer({ name, channel, extras }, ip);
    const sessionId = await services.messaging.openSupportSession(customer.id);
    return {
      customerId: customer.id,
      token: tokens.token,
      refreshToken: tokens.refreshToken as string,
      sessionId,
      expiresAt: tokens.expiresAt,
    };
  }

  app.post(
    '/api/v1/public/customer-token',
    {
      config,
      schema: {
        summary: 'Anonymous customer token and its support session',
        tags,
        body: CustomerTokenBody,
        response: { 200: CustomerTokenResult, ...errors },
      },
    },
    async (request) => {
      const { name, channel, email, phone, channelUserId } = request.body as Static<typeof CustomerTokenBody>;
      // Only the listed contact fields are kept; unknown fields are ignored, not stored.
      const contact = Object.fromEntries(
        Object.entries({ email, phone, channelUserId }).filter(([, value]) => value !== undefined),
      );
      return newCustomer(name, channel, contact, request.ip);
    },
  );

  app.post(
    '/api/v1/customers',
    {
      config,
      schema: {
        summary: 'Create a customer (same as customer-token)',
        tags,
        body: CustomerBody,
        response: { 200: CustomerResult, ...errors },
      },
    },
    async (request) => {
      const { name, channel, metadata } = request.body;
      const { customerId, ...rest } = await newCustomer(name, channel, metadata ? { metadata } : {}, request.ip);
      return { id: customerId, ...rest };
    },
  );

  async function customerRefresh(
    request: FastifyRequest,
    customerId: string | undefined,
    refreshToken: string | undefined,
  ) {
    if (!refreshToken)
      throw new GatehouseError('MISSING_TOKEN', 'refreshToken is required: a customer id alone never mints a token');
    const issued = await auth.refresh(refreshToken, {
      kind: 'customer',
      ...(customerId ? { principalId: customerId } : {}),
    });
    logReuseGrace(request, issued);
    // A returning customer gets its open support session back (a new one if the last was closed).
    const sessionId = await services.messaging.openSupportSession(issued.principal.id);
    return { token: issued.token, refreshToken: issued.refreshToken as string, sessionId, expiresAt: issued.expiresAt };
  }

  app.post(
    '/api/v1/customers/:customerId/token',
    {
      config,
      onError: logRefusals('customer refresh refused', (request) =>
        (request.params as { customerId?: string }).customerId?.slice(0, 128),
      ),
      schema: {
        summary: "New customer token from the customer's refresh token",
        tags,
        params: Type.Object({ customerId: Id }),
        body: CustomerRefreshBody,
        response: { 200: CustomerRefreshResult, ...errors },
      },
    },
    async (request) => customerRefresh(request, request.params.customerId, request.body.refreshToken),
  );

  app.post(
    '/api/v1/customers/token',
    {
      config,
      onError: logRefusals('customer refresh refused', (request) => bodyField(request, 'customerId')),
      schema: {
        summary: 'Same as /customers/{customerId}/token with customerId in the body',
        tags,
        body: Type.Composite([CustomerRefreshBody, Type.Object({ customerId: Id })]),
        response: { 200: CustomerRefreshResult, ...errors },
      },
    },
    async (request) => customerRefresh(request, request.body.customerId, request.body.refreshToken),
  );

  app.get(
    '/api/v1/public/validate-token',
    {
      config,
      schema: {
        summary: 'Is this access token valid? Always 200 for a well-formed call',
        tags,
        querystring: Type.Object({ token: Type.Optional(Type.String({ maxLength: 8192 })) }),
        response: { 200: ValidateTokenResult, 400: ErrorBody, 503: ErrorBody },
      },
    },
    async (request) => {
      const token = request.query.token ?? bearerToken(request);
      if (!token) throw new GatehouseError('MISSING_TOKEN', 'pass ?token= or Authorization: Bearer', { status: 400 });
      const verified = services.tokens.verifyAccessToken(token);
      if (!verified.ok)
        return {
          valid: false,
          ...(verified.claims ? { type: verified.claims.kind } : {}),
          error: verified.code,
          message: verified.message,
        };
      try {
        const context = await auth.authenticateRequest(token);
        const { kind, id, name } = context.principal;
        if (kind !== 'customer') return { valid: true, type: kind, userId: id, name, expiresAt: context.expiresAt };
        const record = await services.store.getPrincipal(id);
        const channel = (record?.extras as { channel?: unknown } | null)?.channel;
        return {
          valid: true,
          type: kind,
          customerId: id,
          name,
          ...(typeof channel === 'string' ? { channel } : {}),
          expiresAt: context.expiresAt,
        };
      } catch (err) {
        if (!(err instanceof GatehouseError)) throw err;
        return {
          valid: false,
          type: verified.claims.kind,
          error: err.code === 'FORBIDDEN' ? 'TOKEN_REVOKED' : err.code,
          message: err.message,
        };
      }
    },
  );
}
