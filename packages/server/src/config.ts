import { readFileSync } from 'node:fs';
import type { PrincipalKind } from '@gatehouse/protocol';
import { checkPrefix } from './broker/broker-support.js';
import { parseDuration } from './duration.js';

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

/** Every key, its default and its meaning are listed in README.md ("Configuration"). */
export const DEFAULT_CONFIG = {
  server: { host: '127.0.0.1', port: 8080, bodyLimit: 65_536, trustProxy: false, tlsCert: '', tlsKey: '' },
  dataDir: './data',
  nodeId: '',
  adminKey: '',
  store: {
    /** Empty: SQLite in the data folder; `sqlite:PATH`; or `postgres://user:pass@host:5432/db` (scale-out). */
    url: '',
    /** PostgreSQL only: connections each node keeps at most (group commit needs few). */
    poolSize: 10,
    /** PostgreSQL only: a new connection not established within this fails the call (the node turns not-ready). */
    connectTimeout: '5s',
    /** PostgreSQL only: a statement unanswered this long fails the call and its connection is dropped. */
    queryTimeout: '15s',
  },
  broker: {
    /** `memory://` (one process only), `redis://[:password@]host:port[/db]` or `nats://host:port`. */
    url: 'memory://',
    /**
     * Namespace of this cluster on a shared Redis/NATS server: topics travel as `<prefix>:<topic>`
     * (Redis channels) or `<prefix>.<topic>` (NATS subjects), so two clusters with different
     * prefixes never see each other's messages. Dot-separated tokens of letters, digits, _ and -.
     */
    prefix: 'gatehouse',
  },
  tokens: {
    issuer: 'gatehouse',
    audience: 'gatehouse',
    algorithms: ['HS256'] as string[],
    keysFile: '',
    clockTolerance: '5s',
    ttl: { user: '30d', agent: '8h', customer: '24h' },
    refreshTtl: { user: '90d', customer: '30d' },
    ticketTtl: '30s',
    expiringNotice: '60s',
  },
  auth: {
    /**
     * How long a node trusts its cached "not revoked / not blocked" answer before asking the
     * store again: the bound on a missed revocation while the broker is away.
     */
    revocationCacheTtl: '5s',
  },
  ws: {
    endpoints: [
      { path: '/ws', kinds: ['user'], tokenRequired: true, rejectMode: 'http' },
      { path: '/ws/chat', kinds: ['customer', 'agent'], tokenRequired: true, rejectMode: 'http' },
      { path: '/', kinds: ['user', 'agent', 'customer'], tokenRequired: false, rejectMode: 'login' },
    ] as EndpointConfig[],
    maxFrameBytes: 65_536,
    authTimeout: '10s',
    heartbeatInterval: '25s',
    heartbeatTimeout: '10s',
    sweepInterval: '1s',
    allowedOrigins: [] as string[],
    connectionPolicy: { user: 'one-per-device-type', agent: 'unlimited', customer: 'unlimited' } as Record<
      PrincipalKind,
      ConnectionPolicy
    >,
    maxBufferedBytes: 4_194_304,
  },
  limits: {
    maxConnections: 100_000,
    maxUnauthenticated: 10_000,
    handshakesPerSecondPerIp: 200,
    messagesPerSecond: 100,
    loginAttemptsPerAccount: 10,
    loginAttemptsPerIp: 50,
    loginWindow: '15m',
    customerTokensPerMinutePerIp: 60,
  },
  messages: { replayLimit: 500, maxTextBytes: 16_384 },
  log: { level: 'info' },
  demo: { seed: true },
};

type Widen<T> = T extends string
  ? string
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends unknown[]
        ? T
        : T extends object
          ? { [K in keyof T]: Widen<T[K]> }
          : T;

export type GatehouseConfig = Widen<typeof DEFAULT_CONFIG>;
export type DeepPartial<T> = T extends unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
export type ConfigInput = DeepPartial<GatehouseConfig>;

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

/** Every leaf key of the configuration with its default, in order (for docs and env parsing). */
export function configKeys(obj: object = DEFAULT_CONFIG, prefix = ''): { path: string; value: unknown }[] {
  const out: { path: string; value: unknown }[] = [];
  for (const [key, value] of Object.entries(obj)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === 'object' && !Array.isArray(value)) out.push(...configKeys(value, path));
    else out.push({ path, value });
  }
  return out;
}

function parseEnvValue(path: string, raw: string, defaultValue: unknown): unknown {
  if (typeof defaultValue === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new TypeError(`${envName(path)}: "${raw}" is not a number`);
    return n;
  }
  if (typeof defaultValue === 'boolean') {
    if (!['true', 'false', '1', '0'].includes(raw)) throw new TypeError(`${envName(path)}: use true or false`);
    return raw === 'true' || raw === '1';
  }
  if (Array.isArray(defaultValue)) {
    if (raw.trim().startsWith('[')) return JSON.parse(raw);
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!node[part] || typeof node[part] !== 'object') node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1) as string] = value;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>, prefix = ''): void {
  for (const [key, value] of Object.entries(over)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
    const path = prefix ? `${prefix}.${key}` : key;
    if (!(key in base)) throw new TypeError(`unknown configuration key "${path}"`);
    const current = base[key];
    if (current && typeof current === 'object' && !Array.isArray(current)) {
      if (!value || typeof value !== 'object' || Array.isArray(value))
        throw new TypeError(`configuration key "${path}" must be an object`);
      merge(current as Record<string, unknown>, value as Record<string, unknown>, path);
    } else if (value !== undefined) {
      base[key] = value;
    }
  }
}

/** Configuration from defaults, then a JSON file, then `GATEHOUSE_*` variables, then `overrides`. */
export function loadConfig(
  options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigInput } = {},
): GatehouseConfig {
  const config = structuredClone(DEFAULT_CONFIG) as unknown as Record<string, unknown>;
  if (options.file) merge(config, JSON.parse(readFileSync(options.file, 'utf8')));
  const env = options.env ?? {};
  const fromEnv: Record<string, unknown> = {};
  for (const { path, value } of configKeys()) {
    const raw = env[envName(path)];
    if (raw !== undefined && raw !== '') setPath(fromEnv, path, parseEnvValue(path, raw, value));
  }
  merge(config, fromEnv);
  if (options.overrides) merge(config, options.overrides as Record<string, unknown>);
  const result = config as unknown as GatehouseConfig;
  validate(result);
  return result;
}

function get(config: GatehouseConfig, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], config);
}

/** A duration key in milliseconds. */
export function ms(config: GatehouseConfig, key: (typeof DURATION_KEYS)[number]): number {
  return parseDuration(get(config, key) as string | number, key);
}

function validate(config: GatehouseConfig): void {
  for (const key of DURATION_KEYS) ms(config, key);
  const paths = new Set<string>();
  for (const endpoint of config.ws.endpoints) {
    if (!endpoint.path?.startsWith('/')) throw new TypeError(`ws.endpoints: path "${endpoint.path}" must start with /`);
    if (paths.has(endpoint.path)) throw new TypeError(`ws.endpoints: path "${endpoint.path}" is listed twice`);
    paths.add(endpoint.path);
    if (!['http', 'close', 'login'].includes(endpoint.rejectMode))
      throw new TypeError(`ws.endpoints: rejectMode must be http, close or login`);
    if (endpoint.tokenRequired && endpoint.rejectMode === 'login')
      throw new TypeError(`ws.endpoints: "${endpoint.path}" requires a token, so rejectMode "login" cannot apply`);
  }
  for (const [kind, policy] of Object.entries(config.ws.connectionPolicy))
    if (!['one-per-device-type', 'single', 'unlimited'].includes(policy))
      throw new TypeError(`ws.connectionPolicy.${kind}: "${policy}" is not a policy`);
  if (config.server.tlsCert && !config.server.tlsKey) throw new TypeError('server.tlsCert needs server.tlsKey');
  checkPrefix(config.broker.prefix);
  if (config.ws.maxFrameBytes < 256) throw new TypeError('ws.maxFrameBytes must be at least 256');
  if (!Number.isInteger(config.store.poolSize) || config.store.poolSize < 1)
    throw new TypeError('store.poolSize must be a whole number of at least 1');
}
