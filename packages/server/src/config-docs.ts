import { configKeys, envName } from './config.js';

/** What each configuration key means; a test fails when a key has no line here. */
export const CONFIG_DESCRIPTIONS: Record<string, string> = {
  'server.host': 'Address to listen on.',
  'server.port': 'Port to listen on (0 picks a free one).',
  'server.bodyLimit': 'Largest REST request body in bytes (413 `PAYLOAD_TOO_LARGE` above).',
  'server.trustProxy': 'Trust `X-Forwarded-For` from a proxy in front (for per-IP limits).',
  'server.tlsCert': 'PEM certificate file: serve `https://` and `wss://` directly.',
  'server.tlsKey': 'PEM private key file for `server.tlsCert`.',
  dataDir: 'Folder for the SQLite file, the generated signing keys and the generated admin key.',
  nodeId: 'Name of this node in logs and admin listings (default: host-pid-random).',
  adminKey: 'The `X-Admin-Key`; generated into `<dataDir>/admin-key` and printed once when empty.',
  'store.url':
    'Empty or `sqlite:PATH` for the embedded SQLite store (default `<dataDir>/gatehouse.db`); `postgres://USER:PASSWORD@HOST:PORT/DB` for PostgreSQL (several nodes).',
  'store.poolSize':
    'PostgreSQL: connections each node keeps at most (its one pool: store, cluster state and rate limits).',
  'store.connectTimeout': 'PostgreSQL: a new connection not made within this fails the call (and `/readyz`).',
  'store.queryTimeout': 'PostgreSQL: a statement unanswered within this fails the call; its connection is dropped.',
  'broker.url': '`memory://` (in-process, one node), `redis://HOST:PORT` or `nats://HOST:PORT` (a cluster).',
  'broker.prefix': 'Channel/subject prefix, one per cluster sharing a broker server (letters, digits, `_`, `-`, dots).',
  'tokens.issuer': 'JWT `iss` written and required.',
  'tokens.audience': 'JWT `aud` written and required.',
  'tokens.algorithms': 'Accepted JWT algorithms (pinned; `none` never is). Every key must use one of them.',
  'tokens.keysFile':
    'Keys file (`{signingKid, keys:[{kid, alg, secret|privateKey|publicKey}]}`); default `<dataDir>/keys.json`, generated with one HS256 secret.',
  'tokens.clockTolerance': 'Leeway for `exp`, `nbf` and `iat` checks.',
  'tokens.ttl.user': 'Access-token lifetime of `user` principals.',
  'tokens.ttl.agent': 'Access-token lifetime of agents.',
  'tokens.ttl.customer': 'Access-token lifetime of customers (`5s` is fine for tests).',
  'tokens.refreshTtl.user': 'Refresh-token lifetime of users.',
  'tokens.refreshTtl.customer': 'Refresh-token lifetime of customers.',
  'tokens.ticketTtl': 'Connect-ticket lifetime.',
  'tokens.expiringNotice': 'How long before expiry a socket gets `token_expiring`.',
  'auth.revocationCacheTtl':
    'How long a node trusts its cached "not revoked / not blocked" answer: the bound on a missed revocation while the broker is away.',
  'ws.endpoints': 'WebSocket endpoints: `[{path, kinds, tokenRequired, rejectMode}]` (JSON in the env variable).',
  'ws.maxFrameBytes': 'Largest client frame (4413 above).',
  'ws.authTimeout': 'An unauthenticated socket is closed with 4408 after this.',
  'ws.heartbeatInterval': 'Server ping interval.',
  'ws.heartbeatTimeout': 'A socket that has not answered a ping within this is closed with 4408.',
  'ws.sweepInterval': 'How often timers (auth timeout, heartbeat, expiry) are checked.',
  'ws.allowedOrigins': 'Allowed `Origin` values (comma-separated in the env variable); empty allows all.',
  'ws.connectionPolicy.user': 'Connections per user: `one-per-device-type`, `single` or `unlimited`.',
  'ws.connectionPolicy.agent': 'Connections per agent (same choices).',
  'ws.connectionPolicy.customer': 'Connections per customer (same choices).',
  'ws.maxBufferedBytes': 'Unsent bytes after which a socket that stopped reading is cut off.',
  'limits.maxConnections': 'Connections per node (503 `SERVER_BUSY` above).',
  'limits.maxUnauthenticated': 'Unauthenticated sockets per node (503 `SERVER_BUSY` above).',
  'limits.handshakesPerSecondPerIp': 'WebSocket handshakes per second per client IP (429 above).',
  'limits.messagesPerSecond': 'Frames per second per connection (burst of the same size).',
  'limits.loginAttemptsPerAccount': 'Failed logins per account per `limits.loginWindow` (429 above).',
  'limits.loginAttemptsPerIp': 'Failed logins per IP per `limits.loginWindow` (429 above).',
  'limits.loginWindow': 'Window for the login limits.',
  'limits.customerTokensPerMinutePerIp': 'Anonymous customer tokens per minute per IP.',
  'messages.replayLimit': 'Offline messages replayed per conversation on authentication (newest first kept).',
  'messages.maxTextBytes': 'Largest message `text` in bytes.',
  'log.level': 'pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
  'demo.seed': 'On the first start (new data folder), create a demo agent and app key and print them.',
};

function format(value: unknown): string {
  if (typeof value === 'string') return value === '' ? '(empty)' : `\`${value}\``;
  const json = JSON.stringify(value);
  return json.length > 60 ? 'see `config.ts`' : `\`${json}\``;
}

export function renderConfigTable(): string {
  return [
    '| key | environment variable | default | meaning |',
    '|---|---|---|---|',
    ...configKeys().map(
      ({ path, value }) =>
        `| \`${path}\` | \`${envName(path)}\` | ${format(value)} | ${CONFIG_DESCRIPTIONS[path] ?? '(undocumented)'} |`,
    ),
  ].join('\n');
}

/** Replaces the `<!-- table:config -->…<!-- /table:config -->` block of a document. */
export function fillConfigTable(doc: string): string {
  return doc.replace(
    /<!-- table:config -->[\s\S]*?<!-- \/table:config -->/,
    `<!-- table:config -->\n${renderConfigTable()}\n<!-- /table:config -->`,
  );
}
