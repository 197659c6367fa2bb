#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { CLOSE_CODES, closeAdvice } from '@gatehouse/protocol';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import WebSocket from 'ws';
import { Gatehouse } from './app.js';
import { type ConfigInput, loadConfig } from './config.js';
import { parseDuration } from './duration.js';
import { createLogger } from './logger.js';

const USAGE = `gatehouse — token-authenticated WebSocket gateway

Usage:
  gatehouse serve [--config FILE] [--host H] [--port P] [--data-dir DIR]
  gatehouse user add --kind agent|user --username U --password P [--name N] [--data-dir DIR]
  gatehouse app-key create --name N [--data-dir DIR]
  gatehouse token issue --sub ID --kind user|agent|customer [--ttl 1h] [--name N] [--device-type T] [--device-id D] [--data-dir DIR]
  gatehouse token decode TOKEN
  gatehouse probe WS_URL [--token T] [--header K:V]... [--hello]
  gatehouse bench URL (--app-key K | --admin-key K) [--clients N] [--rate M] [--duration T]   (--help for more)

Every configuration key can also be set with a GATEHOUSE_* environment variable (see README).`;

const OPTIONS = {
  config: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'data-dir': { type: 'string' },
  kind: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  name: { type: 'string' },
  sub: { type: 'string' },
  ttl: { type: 'string' },
  'device-type': { type: 'string' },
  'device-id': { type: 'string' },
  token: { type: 'string' },
  header: { type: 'string', multiple: true },
  hello: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class UsageError extends Error {}

function required(flags: Flags, name: keyof Flags): string {
  const value = flags[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function configFrom(flags: Flags, logLevel?: string) {
  const overrides: ConfigInput = {};
  if (flags.host) overrides.server = { ...overrides.server, host: flags.host };
  if (flags.port) {
    const port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0-65535');
    overrides.server = { ...overrides.server, port };
  }
  if (flags['data-dir']) overrides.dataDir = flags['data-dir'];
  if (logLevel) overrides.log = { level: logLevel };
  return loadConfig({ ...(flags.config ? { file: flags.config } : {}), env: process.env, overrides });
}

/** Opens the data folder's services without listening (for the admin commands). */
async function offline<T>(flags: Flags, run: (gatehouse: Gatehouse) => Promise<T>): Promise<T> {
  const config = configFrom(flags, 'warn');
  const gatehouse = await Gatehouse.create({ config });
  try {
    return await run(gatehouse);
  } finally {
    await gatehouse.close();
  }
}

async function serve(flags: Flags): Promise<void> {
  const config = configFrom(flags);
  const log = createLogger(config.log.level);
  const gatehouse = await Gatehouse.create({ config, logger: log });
  const { url } = await gatehouse.listen();
  const { notes, services } = gatehouse;
  log.info({ url, dataDir: notes.dataDir, node: services.nodeId }, 'gatehouse listening');
  const lines: string[] = [`Gatehouse is serving on ${url}  (data: ${notes.dataDir})`];
  if (notes.generatedAdminKey)
    lines.push(`Admin key (shown once, kept in ${notes.dataDir}/admin-key): ${notes.generatedAdminKey}`);
  if (notes.keysFileCreated && config.demo.seed) {
    const password = `demo-${Math.random().toString(36).slice(2, 10)}`;
    await services.auth
      .createAccount({ kind: 'agent', username: 'demo-agent', password, name: 'Demo Agent' })
      .catch(() => {});
    const app = await services.auth.createAppKey('demo app');
    lines.push(
      '',
      'First start: created a demo agent and a demo app key.',
      `  agent: demo-agent / ${password}`,
      `  app key: ${app.key}`,
      '',
      'Try:',
      `  curl -s ${url}/api/v1/public/login -H 'content-type: application/json' -d '{"username":"demo-agent","password":"${password}"}'`,
      `  curl -s ${url}/openapi/v1/user/login -H 'X-App-Key: ${app.key}' -H 'content-type: application/json' -d '{"id":"alice","nickname":"Alice","device":"im_web"}'`,
      `  curl -s ${url}/api/v1/public/customer-token -H 'content-type: application/json' -d '{"name":"Visitor","channel":"web"}'`,
      `  npx gatehouse probe ${url.replace(/^http/, 'ws')}/ws/chat --token <token from the login above> --hello`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    gatehouse.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function probe(url: string, flags: Flags): Promise<number> {
  const headers: Record<string, string> = {};
  for (const h of flags.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`--header "${h}" is not K:V`);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  if (flags.token) headers.authorization = `Bearer ${flags.token.replace(/^bearer\s+/i, '')}`;
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    const timer = setTimeout(() => {
      console.log('no answer within 10 s');
      ws.terminate();
      resolve(2);
    }, 10_000);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        clearTimeout(timer);
        console.log(`refused in the handshake: HTTP ${res.statusCode}`);
        console.log(`  code:    ${res.headers['x-websocket-error-code'] ?? '(none)'}`);
        console.log(`  message: ${res.headers['x-websocket-error-message'] ?? '(none)'}`);
        if (body) console.log(`  body:    ${body}`);
        resolve(1);
      });
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      console.log(`connection failed: ${err.message}`);
      resolve(2);
    });
    ws.on('message', (data) => {
      const text = data.toString();
      console.log(`< ${text}`);
      try {
        const frame = JSON.parse(text) as { type?: string };
        if (frame.type === 'connected' && flags.hello) ws.send(JSON.stringify({ type: 'hello', id: 'probe' }));
        else if (frame.type === 'connected' || frame.type === 'hello') ws.close(1000);
      } catch {}
    });
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      const info = CLOSE_CODES.find((c) => c.code === code);
      console.log(
        `closed: ${code} ${reason.toString()} — ${info?.description ?? 'unknown code'} (client should: ${closeAdvice(code)})`,
      );
      resolve(code === 1000 ? 0 : 1);
    });
  });
}

function decode(token: string): void {
  const raw = token.replace(/^bearer\s+/i, '');
  const header = decodeProtectedHeader(raw);
  const payload = decodeJwt(raw);
  const now = Math.floor(Date.now() / 1000);
  console.log(JSON.stringify({ header, payload }, null, 2));
  if (typeof payload.exp === 'number')
    console.log(payload.exp > now ? `expires in ${payload.exp - now} s` : `expired ${now - payload.exp} s ago`);
  console.log('(decoded only: the signature was not checked)');
}

export async function main(argv: string[]): Promise<number> {
  // `bench` has options of its own (cli-bench.ts).
  if (argv[0] === 'bench') return (await import('./cli-bench.js')).benchCommand(argv.slice(1));
  const { values: flags, positionals } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  const [command, sub, arg] = positionals;
  if (flags.help || !command) {
    console.log(USAGE);
    return flags.help ? 0 : 1;
  }
  switch (`${command} ${sub ?? ''}`.trim()) {
    case 'serve':
      await serve(flags);
      return -1;
    case 'user add': {
      const kind = required(flags, 'kind');
      if (kind !== 'agent' && kind !== 'user') throw new UsageError('--kind must be agent or user');
      const created = await offline(flags, (g) =>
        g.services.auth.createAccount({
          kind,
          username: required(flags, 'username'),
          password: required(flags, 'password'),
          ...(flags.name ? { name: flags.name } : {}),
        }),
      );
      console.log(`created ${created.kind} ${created.id} (${created.name})`);
      return 0;
    }
    case 'app-key create': {
      const key = await offline(flags, (g) => g.services.auth.createAppKey(required(flags, 'name')));
      console.log(`created app key ${key.id} "${key.name}" (shown once):`);
      console.log(key.key);
      return 0;
    }
    case 'token issue': {
      const kind = required(flags, 'kind');
      if (!['user', 'agent', 'customer'].includes(kind)) throw new UsageError('--kind must be user, agent or customer');
      const sub = required(flags, 'sub');
      const issued = await offline(flags, async (g) => {
        const existing = await g.services.store.getPrincipal(sub);
        const principal = existing ?? { id: sub, kind: kind as 'user', name: flags.name ?? sub };
        if (existing && existing.kind !== kind) throw new UsageError(`${sub} is a ${existing.kind}, not a ${kind}`);
        return g.services.auth.startSession(
          principal,
          { deviceType: flags['device-type'] ?? null, deviceId: flags['device-id'] ?? null },
          flags.ttl ? parseDuration(flags.ttl, '--ttl') : undefined,
        );
      });
      console.error(`expires at ${new Date(issued.expiresAt).toISOString()}`);
      console.log(issued.token);
      return 0;
    }
    case 'token decode':
      if (!arg && !flags.token) throw new UsageError('token decode TOKEN');
      decode((arg ?? flags.token) as string);
      return 0;
    default:
      if (command === 'probe') {
        if (!sub) throw new UsageError('probe WS_URL');
        return probe(sub, flags);
      }
      throw new UsageError(`unknown command "${positionals.join(' ')}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      console.error(`gatehouse: ${(err as Error).message}\n\n${USAGE}`);
      process.exit(64);
    }
    console.error(`gatehouse: ${(err as Error).message}`);
    process.exit(1);
  },
);
