import { readFileSync } from 'node:fs';
import type { PrincipalKind } from '@gatehouse/protocol';
import { type Static, Type as T, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { checkPrefix } from './broker/broker-support.js';
import { parseDuration } from './duration.js';

/*
 * The configuration is one TypeBox schema: each key's type, default and meaning (the README table
 * is generated from it, `npm run docs`). `loadConfig` merges defaults, a JSON file, `GATEHOUSE_*`
 * variables and overrides, validates the whole result, reports every problem with its key and
 * where the value came from, and returns it deep-frozen.
 */

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const DURATION = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)?\\s*$';

/** A duration: "500ms", "5s", "10m", "8h", "30d" or milliseconds; `ms()` reads it as a number. */
const duration = (value: string, description: string) =>
  T.Union([T.String({ pattern: DURATION }), T.Number({ minimum: 0 })], {
    default: value,
    description,
    'x-duration': true,
  });
const int = (value: number, description: string, minimum = 0, maximum?: number) =>
  T.Integer({ default: value, description, minimum, ...(maximum === undefined ? {} : { maximum }) });
const str = (value: string, description: string) => T.String({ default: value, description });
const bool = (value: boolean, description: string) => T.Boolean({ default: value, description });
const strings = (description: string) => T.Array(T.String(), { default: [], description });
const oneOf = <const L extends string>(values: readonly L[], value: L, description: string) =>
  T.Union(
    values.map((v) => T.Literal(v)),
    { default: value, description },
  );
const group = <P extends Record<string, TSchema>>(properties: P) =>
  T.Object(properties, { additionalProperties: false });

const KINDS = ['user', 'agent', 'customer'] as const;
const Kind = T.Union(KINDS.map((k) => T.Literal(k)));
const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'EdDSA', 'ES256', 'RS256'] as const;
const POLICIES = ['one-per-device-type', 'single', 'unlimited'] as const;
const policy = (value: ConnectionPolicy, description: string) => oneOf(POLICIES, value, description);

const REJECT_MODES = ['http', 'close', 'login'] as const;
const Endpoint = group({
  path: T.String({ pattern: '^/' }),
  kinds: T.Array(Kind, { minItems: 1, uniqueItems: true }),
  tokenRequired: T.Boolean(),
  rejectMode: T.Union(REJECT_MODES.map((m) => T.Literal(m))),
});

export const CONFIG_SCHEMA = group({
  server: group({
    host: str('127.0.0.1', 'Address to listen on.'),
    port: int(8080, 'Port to listen on (0 picks a free one).', 0, 65_535),
    bodyLimit: int(65_536, 'Largest REST request body in bytes (413 `PAYLOAD_TOO_LARGE` above).', 1),
    trustProxy: bool(false, 'Trust `X-Forwarded-For` from a proxy in front (for per-IP limits).'),
    tlsCert: str('', 'PEM certificate file: serve `https://` and `wss://` directly.'),
    tlsKey: str('', 'PEM private key file for `server.tlsCert`.'),
    cors: group({
      origins: strings(
        'Origins allowed to call the REST API from a browser (CORS); `*` applies to the public token routes only. Empty: no CORS.',
      ),
    }),
    metricsAuth: bool(
      false,
      '`/metrics` requires the `X-Admin-Key` (default: public, for a scraper on a private network).',
    ),
    openapiAuth: bool(false, '`/openapi.json` requires the `X-Admin-Key` (default: public).'),
  }),
  dataDir: str('./data', 'Folder (created `0700`) for the SQLite file, the generated signing keys and the admin key.'),
  nodeId: str('', 'Name of this node in logs and admin listings (default: host-pid-random).'),
  adminKey: str('', 'The `X-Admin-Key`; when empty, generated once into `<dataDir>/admin-key` (mode 0600).'),
  bannerFile: str(
    '',
    'Where the first-start banner (admin key, demo login) is written, mode 0600; default `<dataDir>/first-start.txt`. It is also shown on stderr when that is a terminal, never in the log.',
  ),
  store: group({
    url: str(
      '',
      'Empty or `sqlite:PATH` for the embedded SQLite store (default `<dataDir>/gatehouse.db`); `postgres://USER:PASSWORD@HOST:PORT/DB` for PostgreSQL (several nodes).',
    ),
    poolSize: int(10, 'PostgreSQL: connections each node keeps at most.', 1),
    connectTimeout: duration('5s', 'PostgreSQL: a new connection not made within this fails the call (and `/readyz`).'),
    queryTimeout: duration(
      '15s',
      'PostgreSQL: a statement unanswered within this fails the call; its connection is dropped.',
    ),
    sqliteSynchronous: oneOf(
      ['FULL', 'NORMAL'],
      'FULL',
      'SQLite: `FULL` fsyncs each commit, so an `ack` survives power loss; `NORMAL` survives a process crash only (see docs/operations.md).',
    ),
    sqliteCheckpointThread: bool(
      false,
      'SQLite: WAL checkpoints on a worker thread with its own connection, off the event loop (default: on the committing connection, after the acks of the batch that filled 1,000 pages; see docs/operations.md).',
    ),
  }),
  broker: group({
    url: str('memory://', '`memory://` (in-process, one node), `redis://HOST:PORT` or `nats://HOST:PORT` (a cluster).'),
    prefix: str(
      'gatehouse',
      'Channel/subject prefix, one per cluster sharing a broker server (letters, digits, `_`, `-`, dots).',
    ),
  }),
  tokens: group({
    issuer: str('gatehouse', 'JWT `iss` written and required.'),
    audience: str('gatehouse', 'JWT `aud` written and required.'),
    algorithms: T.Array(T.Union(ALGORITHMS.map((a) => T.Literal(a))), {
      default: ['HS256'],
      minItems: 1,
      uniqueItems: true,
      description: 'Accepted JWT algorithms (pinned; `none` never is). Every key must use one of them.',
    }),
    keysFile: str(
      '',
      'Keys file (`{signingKid, keys:[{kid, alg, secret|privateKey|publicKey}]}`); default `<dataDir>/keys.json`, generated with one HS256 secret. `gatehouse keys generate|rotate` writes it.',
    ),
    clockTolerance: duration('5s', 'Leeway for `exp`, `nbf` and `iat` checks.'),
    ttl: group({
      user: duration('30d', 'Access-token lifetime of `user` principals.'),
      agent: duration('8h', 'Access-token lifetime of agents.'),
      customer: duration('24h', 'Access-token lifetime of customers (`5s` is fine for tests).'),
    }),
    refreshTtl: group({
      user: duration('90d', 'Refresh-token lifetime of users.'),
      customer: duration('30d', 'Refresh-token lifetime of customers.'),
    }),
    ticketTtl: duration('30s', 'Connect-ticket lifetime.'),
    expiringNotice: duration('60s', 'How long before expiry a socket gets `token_expiring`.'),
  }),
  auth: group({
    revocationCacheTtl: duration(
      '5s',
      'How long a node trusts its cached "not revoked / not blocked" answer before asking the store again: the bound on revocation staleness when a broker event is lost.',
    ),
    refreshReuseGrace: duration(
      '10s',
      'How long after a refresh token is rotated it may be presented once more and get a new pair for the same session instead of revoking it (a page closed before it stored the answer); at most 60s, `0` turns it off (docs/tokens.md).',
    ),
  }),
  ws: group({
    endpoints: T.Array(Endpoint, {
      minItems: 1,
      default: [
        { path: '/ws', kinds: ['user'], tokenRequired: true, rejectMode: 'http' },
        { path: '/ws/chat', kinds: ['customer', 'agent'], tokenRequired: true, rejectMode: 'http' },
        { path: '/', kinds: ['user', 'agent', 'customer'], tokenRequired: false, rejectMode: 'login' },
      ],
      description:
        'WebSocket endpoints: `[{path, kinds, tokenRequired, rejectMode}]`; kinds among `user`, `agent`, `customer`; rejectMode `http`, `close` or `login` (JSON in the env variable).',
    }),
    maxFrameBytes: int(65_536, 'Largest client frame (4413 above).', 256),
    authTimeout: duration('10s', 'An unauthenticated socket is closed with 4408 after this.'),
    heartbeatInterval: duration('25s', 'Server ping interval.'),
    heartbeatTimeout: duration('10s', 'A socket that has not answered a ping within this is closed with 4408.'),
    sweepInterval: duration('1s', 'How often timers (auth timeout, heartbeat, expiry) are checked.'),
    allowedOrigins: strings('Allowed `Origin` values (comma-separated in the env variable); empty allows all.'),
    connectionPolicy: group({
      user: policy('one-per-device-type', 'Connections per user: `one-per-device-type`, `single` or `unlimited`.'),
      agent: policy('unlimited', 'Connections per agent (same choices).'),
      customer: policy('unlimited', 'Connections per customer (same choices).'),
    }),
    maxBufferedBytes: int(4_194_304, 'Unsent bytes after which a socket that stopped reading is cut off.', 1),
  }),
  limits: group({
    maxConnections: int(100_000, 'Connections per node (503 `SERVER_BUSY` above).', 1),
    maxUnauthenticated: int(10_000, 'Unauthenticated sockets per node (503 `SERVER_BUSY` above).', 1),
    maxHandshakesInProgress: int(
      100,
      'Token handshakes a node works on at once, from the credential check to the end of the offline replay, not counting time spent waiting for a slow client to read (503 `SERVER_BUSY` with `Retry-After` above): in a reconnect storm the node finishes those it took instead of letting all of them time out.',
      1,
    ),
    handshakesPerSecondPerIp: int(200, 'WebSocket handshakes per second per client IP (429 above).', 1),
    messagesPerSecond: int(100, 'Frames per second per connection (burst of the same size).', 1),
    loginAttemptsPerAccount: int(
      100,
      'Failed logins per account from all addresses per `limits.loginWindow` (429 above): bounds a distributed brute force.',
      1,
    ),
    loginAttemptsPerAccountAndIp: int(
      10,
      'Failed logins per account from one IP per `limits.loginWindow` (429 above): the strict limit, which an attacker elsewhere cannot use to lock the owner out.',
      1,
    ),
    loginAttemptsPerIp: int(50, 'Failed logins per IP per `limits.loginWindow` (429 above).', 1),
    loginWindow: duration('15m', 'Window for the login limits.'),
    customerTokensPerMinutePerIp: int(60, 'Anonymous customer tokens per minute per IP.', 1),
    supportSessionsPerMinute: int(10, 'Support sessions one customer (and one IP) may open per minute.', 1),
  }),
  messages: group({
    replayLimit: int(500, 'Offline messages replayed per conversation on authentication (newest first kept).', 1),
    maxTextBytes: int(16_384, 'Largest message `text` in bytes.', 1),
  }),
  log: group({
    level: oneOf(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'info',
      'pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
    ),
  }),
  demo: group({
    seed: T.Union([T.Literal('auto'), T.Boolean()], {
      default: 'auto',
      description:
        'On the first start (new data folder), create a demo agent and app key. `auto`: only on the embedded SQLite store, never on PostgreSQL; `true`/`false` force it.',
    }),
  }),
  web: group({
    enabled: bool(
      true,
      'Serve the web pages: the embeddable widget `/widget.js`, the agent console `/console/` and the demo page `/demo/`.',
    ),
  }),
});

/** How many live connections one principal may hold (SPEC §7). */
export type ConnectionPolicy = 'one-per-device-type' | 'single' | 'unlimited';

/**
 * What a WebSocket endpoint does with a bad credential:
 * `http` rejects in the handshake, `close` opens, sends the error frame and closes,
 * `login` opens, sends the error frame and lets the client log in over the socket.
 */
export type RejectMode = 'http' | 'close' | 'login';

export interface EndpointConfig {
  path: string;
  kinds: PrincipalKind[];
  tokenRequired: boolean;
  rejectMode: RejectMode;
}

type Mutable<T> = T extends readonly (infer U)[]
  ? Mutable<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Mutable<T[K]> }
    : T;
export type GatehouseConfig = Mutable<Static<typeof CONFIG_SCHEMA>>;
export type DeepPartial<T> = T extends unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
export type ConfigInput = DeepPartial<GatehouseConfig>;

/** The defaults, as one frozen configuration. */
export const DEFAULT_CONFIG: GatehouseConfig = deepFreeze(
  configKeys().reduce<Record<string, unknown>>((config, key) => {
    merge(config, nest(key.path, key.value), '', () => 'default', new Map(), []);
    return config;
  }, {}) as GatehouseConfig,
);

/** Keys holding durations ("5s", "30d" or milliseconds); `ms()` reads them as numbers. */
export const DURATION_KEYS = [
  'store.connectTimeout',
  'store.queryTimeout',
  'tokens.clockTolerance',
  'tokens.ttl.user',
  'tokens.ttl.agent',
  'tokens.ttl.customer',
  'tokens.refreshTtl.user',
  'tokens.refreshTtl.customer',
  'tokens.ticketTtl',
  'tokens.expiringNotice',
  'auth.revocationCacheTtl',
  'auth.refreshReuseGrace',
  'ws.authTimeout',
  'ws.heartbeatInterval',
  'ws.heartbeatTimeout',
  'ws.sweepInterval',
  'limits.loginWindow',
] as const;

/** `tokens.ttl.customer` → `GATEHOUSE_TOKENS_TTL_CUSTOMER`. */
export function envName(path: string): string {
  return `GATEHOUSE_${path
    .split('.')
    .map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
    .join('_')}`;
}

export interface ConfigKey {
  path: string;
  schema: TSchema;
  value: unknown;
  description: string;
}

/** Every leaf key of the configuration with its schema and default, in order (for docs and env parsing). */
export function configKeys(schema: TSchema = CONFIG_SCHEMA, prefix = ''): ConfigKey[] {
  const out: ConfigKey[] = [];
  for (const [key, child] of Object.entries(
    (schema as unknown as { properties: Record<string, TSchema> }).properties,
  )) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (child.type === 'object' && 'properties' in child) out.push(...configKeys(child, path));
    else out.push({ path, schema: child, value: child.default, description: String(child.description ?? '') });
  }
  return out;
}

/** One thing wrong with the configuration: the key, where its value came from, and what is wrong. */
export interface ConfigProblem {
  key: string;
  source: string;
  message: string;
}

/** Thrown by `loadConfig` with every problem found, each on its own line of the message. */
export class ConfigError extends TypeError {
  constructor(readonly problems: ConfigProblem[]) {
    super(
      problems.length === 1
        ? `configuration: ${line(problems[0] as ConfigProblem)}`
        : `configuration has ${problems.length} problems:\n${problems.map((p) => `  - ${line(p)}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}
const line = (p: ConfigProblem) => `${p.key} (${p.source}): ${p.message}`;

export interface LoadConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: ConfigInput;
  /** Where an override came from, by key (e.g. `{'server.port': 'flag --port'}`); default "overrides". */
  overrideSources?: Record<string, string>;
  /** Called with each warning (unknown `GATEHOUSE_*` variables). */
  warn?: (message: string) => void;
}

const validated = new WeakSet<object>();

/** True for a configuration returned by `loadConfig` (validated and frozen). */
export function isLoadedConfig(config: unknown): config is GatehouseConfig {
  return typeof config === 'object' && config !== null && validated.has(config);
}

/** Configuration from defaults, then a JSON file, then `GATEHOUSE_*` variables, then `overrides`. */
export function loadConfig(options: LoadConfigOptions = {}): GatehouseConfig {
  const problems: ConfigProblem[] = [];
  const sources = new Map<string, string>();
  const config = structuredClone(DEFAULT_CONFIG) as unknown as Record<string, unknown>;

  if (options.file) {
    const source = `file ${options.file}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(options.file, 'utf8'));
    } catch (err) {
      problems.push({ key: '(file)', source, message: (err as Error).message });
    }
    if (parsed !== undefined) {
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
        merge(config, parsed as Record<string, unknown>, '', () => source, sources, problems);
      else problems.push({ key: '(file)', source, message: 'must hold a JSON object' });
    }
  }

  const env = options.env ?? {};
  const known = new Map(configKeys().map((k) => [envName(k.path), k]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('GATEHOUSE_') || name.startsWith('GATEHOUSE_TEST_') || raw === undefined || raw === '')
      continue;
    const key = known.get(name);
    if (!key) {
      const near = nearest(name, [...known.keys()]);
      options.warn?.(`unknown variable ${name} is ignored${near ? ` (did you mean ${near}?)` : ''}`);
      continue;
    }
    const source = `variable ${name}`;
    const value = fromEnv(key.schema, raw);
    if (value instanceof Error) problems.push({ key: key.path, source, message: value.message });
    else merge(config, nest(key.path, value), '', () => source, sources, problems);
  }

  if (options.overrides) {
    const labels = options.overrideSources ?? {};
    merge(
      config,
      options.overrides as Record<string, unknown>,
      '',
      (path) => (Object.hasOwn(labels, path) ? (labels[path] as string) : 'overrides'),
      sources,
      problems,
    );
  }

  // A value's source is recorded where it was set: `ws.endpoints[0].kinds` came with `ws.endpoints`.
  const sourceOf = (key: string) => {
    let k = key;
    while (k) {
      const s = sources.get(k);
      if (s) return s;
      const parent = k.replace(/(^|\.)[^.[]*$|\[\d+\]$/, '');
      if (parent === k) break; // a key name with odd characters: no parent to find
      k = parent;
    }
    return 'default';
  };
  for (const error of Value.Errors(CONFIG_SCHEMA, config)) {
    const key = keyOf(error.path);
    // A union reports itself and each branch; the branch errors say nothing new.
    if (problems.some((p) => key === p.key || key.startsWith(`${p.key}.`) || key.startsWith(`${p.key}[`))) continue;
    problems.push({ key, source: sourceOf(key), message: describe(error.schema, error.message, error.value) });
  }
  for (const p of crossChecks(config as unknown as GatehouseConfig, problems))
    problems.push({ ...p, source: sourceOf(p.key) });
  if (problems.length > 0) throw new ConfigError(problems);
  const result = deepFreeze(config as unknown as GatehouseConfig);
  validated.add(result);
  return result;
}

function merge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
  prefix: string,
  source: (path: string) => string,
  sources: Map<string, string>,
  problems: ConfigProblem[],
): void {
  for (const [key, value] of Object.entries(over)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (FORBIDDEN.has(key)) {
      problems.push({ key: path, source: source(path), message: 'is not a configuration key' });
      continue;
    }
    if (value === undefined) continue;
    const current = base[key];
    const isObject = (v: unknown) => !!v && typeof v === 'object' && !Array.isArray(v);
    if (isObject(current) && isObject(value)) {
      merge(current as Record<string, unknown>, value as Record<string, unknown>, path, source, sources, problems);
    } else {
      base[key] = structuredClone(value);
      sources.set(path, source(path));
    }
  }
}

function nest(path: string, value: unknown): Record<string, unknown> {
  return path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}

/** A variable's text read as the key's type: the first reading the schema accepts, else the raw text. */
function fromEnv(schema: TSchema, raw: string): unknown {
  const text = raw.trim();
  const candidates: unknown[] = [raw];
  if (text !== '' && Number.isFinite(Number(text))) candidates.push(Number(text));
  if (['true', 'false', '1', '0'].includes(text)) candidates.push(text === 'true' || text === '1');
  if (schema.type === 'array') {
    if (text.startsWith('[')) {
      try {
        candidates.push(JSON.parse(text));
      } catch (err) {
        return new Error(`not valid JSON: ${(err as Error).message}`);
      }
    } else
      candidates.push(
        text
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      );
  }
  return candidates.find((c) => Value.Check(schema, c)) ?? candidates.at(-1);
}

function keyOf(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((key, part) => (/^\d+$/.test(part) ? `${key}[${part}]` : key ? `${key}.${part}` : part), '');
}

function describe(schema: TSchema, message: string, value: unknown): string {
  const shown = JSON.stringify(value) ?? String(value);
  if (schema['x-duration']) return `${shown} is not a duration (use e.g. 500ms, 5s, 10m, 8h, 30d)`;
  if (message.startsWith('Unexpected property')) return 'is not a configuration key';
  if (schema.anyOf && (schema.anyOf as TSchema[]).every((s) => 'const' in s))
    return `${shown} is not one of ${(schema.anyOf as TSchema[]).map((s) => JSON.stringify(s.const)).join(', ')}`;
  return `${message.toLowerCase()}, got ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown}`;
}

const MAX_TIMER_MS = 2_147_483_647;
const MAX_REFRESH_REUSE_GRACE_MS = 60_000;
/** Durations that become timers. */
const TIMER_KEYS = [
  'ws.sweepInterval',
  'ws.heartbeatInterval',
  'ws.heartbeatTimeout',
  'ws.authTimeout',
  'store.connectTimeout',
  'store.queryTimeout',
  'auth.revocationCacheTtl',
] as const;

type Check = (config: GatehouseConfig, out: Omit<ConfigProblem, 'source'>[]) => void;

/** Rules across keys, which the schema cannot say; each runs on its own (a part the schema refused makes it skip). */
const CROSS_CHECKS: Check[] = [
  (config, out) => {
    const paths = new Set<string>();
    config.ws.endpoints.forEach((endpoint, i) => {
      const key = `ws.endpoints[${i}]`;
      if (paths.has(endpoint.path)) out.push({ key, message: `path "${endpoint.path}" is listed twice` });
      paths.add(endpoint.path);
      if (endpoint.tokenRequired && endpoint.rejectMode === 'login')
        out.push({ key, message: `"${endpoint.path}" requires a token, so rejectMode "login" cannot apply` });
    });
  },
  // Node's timers hold at most 2^31-1 ms (longer fire at once), and a zero interval would spin.
  (config, out) => {
    for (const key of TIMER_KEYS) {
      const value = ms(config, key);
      if (value > MAX_TIMER_MS) out.push({ key, message: 'must be at most 24d (a Node.js timer limit)' });
      else if (value < 10 && (key === 'ws.sweepInterval' || key === 'ws.heartbeatInterval'))
        out.push({ key, message: 'must be at least 10ms' });
    }
  },
  // The grace window is a hole in reuse detection: a stolen token presented within it is answered.
  (config, out) => {
    if (ms(config, 'auth.refreshReuseGrace') > MAX_REFRESH_REUSE_GRACE_MS)
      out.push({ key: 'auth.refreshReuseGrace', message: 'must be at most 60s' });
  },
  (config, out) => {
    if (config.server.tlsCert && !config.server.tlsKey)
      out.push({ key: 'server.tlsKey', message: 'is needed with server.tlsCert' });
    if (config.server.tlsKey && !config.server.tlsCert)
      out.push({ key: 'server.tlsCert', message: 'is needed with server.tlsKey' });
  },
  (config, out) => {
    try {
      checkPrefix(config.broker.prefix);
    } catch (err) {
      out.push({ key: 'broker.prefix', message: (err as Error).message });
    }
  },
  (config, out) => {
    const store = config.store.url;
    if (store && !/^(sqlite:|postgres(ql)?:\/\/)/.test(store))
      out.push({
        key: 'store.url',
        message: `"${store.split(':')[0]}:…" is not supported (use sqlite:PATH, postgres://… or leave empty)`,
      });
    if (config.broker.url && !/^(memory:\/\/|rediss?:\/\/|nats:\/\/)/.test(config.broker.url))
      out.push({
        key: 'broker.url',
        message: `"${config.broker.url.split(':')[0]}:…" is not supported (use memory://, redis://… or nats://…)`,
      });
  },
  (config, out) => {
    // `*` beside listed origins is meaningful: every origin for the public token routes, the
    // listed ones for the rest. Anything else must be an origin, not a host or a URL with a path.
    for (const origin of config.server.cors.origins)
      if (origin !== '*' && !/^https?:\/\/[^/\s*]+$/.test(origin))
        out.push({ key: 'server.cors.origins', message: `"${origin}" is not an origin (scheme://host[:port], or *)` });
  },
];

function crossChecks(config: GatehouseConfig, known: ConfigProblem[]): Omit<ConfigProblem, 'source'>[] {
  const out: Omit<ConfigProblem, 'source'>[] = [];
  for (const check of CROSS_CHECKS) {
    const found: Omit<ConfigProblem, 'source'>[] = [];
    try {
      check(config, found);
    } catch {
      continue; // it read a value the schema already refused
    }
    out.push(...found.filter((p) => !known.some((k) => k.key === p.key)));
  }
  return out;
}

function get(config: GatehouseConfig, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], config);
}

/** A duration key in milliseconds. */
export function ms(config: GatehouseConfig, key: (typeof DURATION_KEYS)[number]): number {
  return parseDuration(get(config, key) as string | number, key);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** The closest known name, if it is close enough to be a typo. */
function nearest(name: string, names: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(3, Math.floor(name.length / 6));
  for (const candidate of names) {
    const d = editDistance(name, candidate);
    if (d <= bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = row;
  }
  return previous[b.length] as number;
}
