import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { AuthContext } from '../auth/auth-service.js';
import { RateLimitedError } from '../auth/rate-limits.js';
import { badText } from '../auth/well-formed-text.js';
import type { GatehouseConfig } from '../config.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import type { Services } from '../services.js';
import type { AccessClaims } from '../tokens/token-service.js';
import { registerAdminRoutes } from './routes/admin-routes.js';
import { registerConversationRoutes, registerSessionRoutes } from './routes/conversation-routes.js';
import { registerHealthRoutes } from './routes/health-routes.js';
import { registerOpenApiUserRoutes } from './routes/open-api-routes.js';
import { registerPublicRoutes } from './routes/public-routes.js';
import { registerTokenRoutes } from './routes/token-routes.js';

export type RestApp = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  Logger,
  TypeBoxTypeProvider
>;

/** The `Authorization: Bearer` token of a request, or null. */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^bearer\s+(.+)$/i.exec(header);
  return match ? (match[1] as string).trim() : null;
}

/** Verifies the request's access token; throws 401 with the refusal code. */
export async function requireAccessToken(
  services: Services,
  request: FastifyRequest,
): Promise<AuthContext & { claims: AccessClaims }> {
  const token = bearerToken(request);
  if (!token) throw new GatehouseError('MISSING_TOKEN', 'Authorization: Bearer <token> is required');
  return services.auth.authenticateRequest(token);
}

/** Checks `X-Admin-Key` in constant time. */
export function requireAdmin(config: GatehouseConfig, request: FastifyRequest): void {
  const given = Buffer.from(String(request.headers['x-admin-key'] ?? ''));
  const expected = Buffer.from(config.adminKey);
  if (expected.length === 0 || given.length !== expected.length || !timingSafeEqual(given, expected))
    throw new GatehouseError('TOKEN_INVALID', 'missing or wrong X-Admin-Key', { status: 401 });
}

/** Deepest nesting of objects and arrays a request body may have (metadata, extras). */
const MAX_BODY_DEPTH = 32;

/** Whether a parsed JSON value nests deeper than `max`; iterative, so any depth is safe to check. */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (!node || typeof node !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Object.values(node)) if (child && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}

/** What an error means for a client: status, code and a message safe to show (never a stack). */
export interface ErrorDetails {
  status: number;
  code: string;
  message: string;
}

/** Maps any error to its status and code; unexpected ones are logged and become 500 INTERNAL. */
export function errorDetails(log: Logger, err: unknown): ErrorDetails {
  if (isGatehouseError(err)) return { status: err.status, code: err.code, message: err.message };
  const e = err as { validation?: unknown; statusCode?: number; code?: string; message?: string };
  if (e.validation) return { status: 400, code: 'INVALID_REQUEST', message: e.message ?? 'invalid request' };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'request body is too large' };
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)
    return { status: e.statusCode, code: 'INVALID_REQUEST', message: e.message ?? 'bad request' };
  log.error({ err }, 'request failed');
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

/** Maps any error to a JSON body `{error, message}` with a 4xx/5xx status; never a stack trace. */
export function sendError(reply: FastifyReply, log: Logger, err: unknown): FastifyReply {
  if (err instanceof RateLimitedError) reply.header('Retry-After', String(err.retryAfterSeconds));
  const { status, code, message } = errorDetails(log, err);
  return reply.status(status).send({ error: code, message });
}

export async function createRestApp(services: Services, log: Logger): Promise<RestApp> {
  const { config } = services;
  const https =
    config.server.tlsCert && config.server.tlsKey
      ? { cert: readFileSync(config.server.tlsCert), key: readFileSync(config.server.tlsKey) }
      : null;
  const app = Fastify({
    loggerInstance: log,
    // Per-request lines would carry URLs with tokens (?token=…); errors are logged by sendError.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimit,
    // Principal ids in paths may be 128 characters, each up to 12 when percent-encoded.
    routerOptions: { maxParamLength: 1536 },
    // Bad URLs and over-long params get the same JSON error shape as everything else.
    frameworkErrors: (err, _request, reply) => sendError(reply, log, err),
    // One proxy hop (nginx): request.ip is the address it reports, as in the gateway's clientIp().
    trustProxy: config.server.trustProxy ? (_address: string, hop: number) => hop === 0 : false,
    ...(https ? { https } : {}),
    // Wrong types are errors, not coerced: `{"username": 5}` is a 400.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as RestApp;

  app.setErrorHandler((err, _request, reply) => sendError(reply, log, err));
  // A body nested thousands deep parses, but would overflow the stack when stored (JSON.stringify).
  app.addHook('preValidation', async (request) => {
    if (nestedDeeperThan(request.body, MAX_BODY_DEPTH))
      throw new GatehouseError('INVALID_REQUEST', `request body is nested deeper than ${MAX_BODY_DEPTH} levels`);
    // Checked after the depth limit, so the walk is bounded; the same rule for every store.
    const bad = badText(request.body) ?? badText(request.params) ?? badText(request.query);
    if (bad === 'nul') throw new GatehouseError('INVALID_REQUEST', 'the request contains a NUL character');
    if (bad === 'ill-formed')
      throw new GatehouseError('INVALID_REQUEST', 'the request contains text that is not well-formed Unicode');
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  await app.register(swagger, {
    openapi: {
      info: { title: 'Gatehouse', version: '0.1.0', description: 'Token-authenticated WebSocket gateway: REST API' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          appKey: { type: 'apiKey', in: 'header', name: 'X-App-Key' },
          adminKey: { type: 'apiKey', in: 'header', name: 'X-Admin-Key' },
        },
      },
    },
  });
  registerPublicRoutes(app, services);
  registerTokenRoutes(app, services);
  registerOpenApiUserRoutes(app, services);
  registerAdminRoutes(app, services);
  registerHealthRoutes(app, services);
  registerConversationRoutes(app, services);
  registerSessionRoutes(app, services);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
