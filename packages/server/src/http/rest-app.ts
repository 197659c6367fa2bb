import { readFileSync } from 'node:fs';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { badText } from '../auth/well-formed-text.js';
import { GatehouseError } from '../errors.js';
import type { Services } from '../services.js';
import { adminKeyAuth } from './credentials.js';
import { sendError } from './error-reply.js';
import { logRequests } from './request-log.js';
import type { RestApp } from './rest-types.js';
import { adminRoutes } from './routes/admin-routes.js';
import { conversationRoutes, groupRoutes, sessionRoutes } from './routes/conversation-routes.js';
import { healthRoutes } from './routes/health-routes.js';
import { openApiRoutes } from './routes/open-api-routes.js';
import { publicRoutes } from './routes/public-routes.js';
import { accessTokenRoutes, refreshTokenRoutes } from './routes/token-routes.js';
import { webAssetsDir, webRoutes } from './routes/web-routes.js';

export type { RestApp } from './rest-types.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `public`: browsers on any origin may call the route when `server.cors.origins` lists `*`. */
    cors?: 'public';
    /** The route needs no store: it answers while the store could not be reached at start. */
    withoutStore?: true;
  }
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

/** The REST app: global input rules, CORS, the OpenAPI document, and one plugin per route group. */
export async function createRestApp(services: Services, log: Logger): Promise<RestApp> {
  const { config } = services;
  const https =
    config.server.tlsCert && config.server.tlsKey
      ? { cert: readFileSync(config.server.tlsCert), key: readFileSync(config.server.tlsKey) }
      : null;
  const app = Fastify({
    loggerInstance: log,
    // Fastify's request lines would carry raw URLs (?token=…): logRequests writes redacted ones.
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

  // Errors of every route not answering in a shape of its own (the open API and refresh-token do).
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
  logRequests(app, log);
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  await app.register(swagger, { openapi: openApiDocument() });
  await registerCors(app, config.server.cors.origins);
  // Until the store could be reached once (PostgreSQL down at start), only routes marked
  // `withoutStore` answer; the rest get the retryable 503 a store failure gets.
  app.addHook('onRequest', async (request) => {
    if (!services.storeStartup.ready && !request.routeOptions.config?.withoutStore)
      throw new GatehouseError('STORE_UNAVAILABLE', 'the store is unavailable; retry shortly');
  });

  // Each group is an encapsulated plugin that guards its own routes with its credential hook.
  const options = { services };
  await app.register(publicRoutes, options);
  await app.register(refreshTokenRoutes, options);
  await app.register(accessTokenRoutes, options);
  await app.register(openApiRoutes, options);
  await app.register(conversationRoutes, options);
  await app.register(groupRoutes, options);
  await app.register(sessionRoutes, options);
  await app.register(adminRoutes, options);
  await app.register(healthRoutes, options);
  if (config.web.enabled) {
    const root = webAssetsDir();
    if (root) await app.register(webRoutes, { services, root });
    else log.warn('web.enabled, but the pages of @gatehouse/web are not built (npm run build): not serving them');
  }

  app.get(
    '/openapi.json',
    {
      ...(config.server.openapiAuth ? { onRequest: adminKeyAuth(config.adminKey, { bearer: true }) } : {}),
      config: { withoutStore: true },
      schema: { hide: true },
    },
    async () => app.swagger(),
  );
  return app;
}

/** The OpenAPI 3.1 document's frame; @fastify/swagger adds every route with its schemas. */
function openApiDocument() {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse',
      version: '0.1.0',
      description:
        'Token-authenticated WebSocket gateway: REST API. Times are milliseconds since the epoch unless a field says seconds.',
    },
    servers: [{ url: '/', description: 'The server that serves this document' }],
    tags: [
      { name: 'public', description: 'Logins and anonymous customer tokens: no credential header' },
      { name: 'tokens', description: 'Refresh rotation, connect tickets, logout' },
      { name: 'open-api', description: "An app's server logs its IM users in with its X-App-Key" },
      { name: 'conversations', description: 'Conversations, history and groups' },
      { name: 'sessions', description: 'Support sessions: agents and customers' },
      { name: 'admin', description: 'Operator API: X-Admin-Key' },
      { name: 'health', description: 'Liveness, readiness, metrics' },
    ],
    components: {
      securitySchemes: {
        bearer: { type: 'http' as const, scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token' },
        appKey: { type: 'apiKey' as const, in: 'header', name: 'X-App-Key', description: "An app's key" },
        adminKey: { type: 'apiKey' as const, in: 'header', name: 'X-Admin-Key', description: 'The admin key' },
        adminBearer: {
          type: 'http' as const,
          scheme: 'bearer',
          description: 'The admin key as a bearer token (/metrics and /openapi.json when protected)',
        },
      },
    },
  };
}

/**
 * CORS for browsers (SPEC §7): routes marked `config.cors = 'public'` accept any origin when
 * `server.cors.origins` lists `*`; every other route only the listed origins. No credentials
 * (cookies) are ever allowed. The policy is read from the route the router matched, never
 * from the URL: each route gets its own OPTIONS route carrying its policy, so a preflight is
 * routed exactly as the request it announces.
 */
async function registerCors(app: RestApp, origins: string[]): Promise<void> {
  const listed = origins.filter((o) => o !== '*');
  const anyForPublic = origins.includes('*');
  const preflights = new Set<string>();
  app.addHook('onRoute', (route) => {
    if (route.method === 'OPTIONS' || route.method === 'HEAD' || preflights.has(route.url)) return;
    preflights.add(route.url);
    app.route({
      method: 'OPTIONS',
      url: route.url,
      config: route.config?.cors ? { cors: route.config.cors } : {},
      schema: { hide: true },
      // Reached only when the CORS hook did not answer the preflight (origin not allowed).
      handler: (_request, reply) => reply.callNotFound(),
    });
  });
  await app.register(cors, {
    hideOptionsRoute: true,
    delegator: (request, callback) => {
      const isPublic = request.routeOptions.config?.cors === 'public';
      // `*` is @fastify/cors' catch-all OPTIONS route: a preflight for a path no route has.
      const known = request.routeOptions.url !== '*';
      const origin = !known ? false : isPublic && anyForPublic ? '*' : listed.length > 0 ? listed : false;
      callback(null, {
        origin,
        credentials: false,
        methods: ['GET', 'POST', 'DELETE'],
        allowedHeaders: ['Authorization', 'X-App-Key', 'Content-Type'],
        maxAge: 600,
      });
    },
  });
}
