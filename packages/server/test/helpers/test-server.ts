import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gatehouse } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import { type ConfigInput, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

export interface TestServer {
  gatehouse: Gatehouse;
  clock: ManualClock;
  /** http://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT */
  wsUrl: string;
  adminKey: string;
  dataDir: string;
  /** Closes the server; removes the data folder unless `keepData`. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object'
        ? merge(out[k] as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  return out;
}

/**
 * A real Gatehouse on a free loopback port with a fresh data folder (real SQLite file)
 * and a ManualClock: tests move time with `clock.advance(ms)` instead of sleeping.
 */
export async function startServer(
  overrides: ConfigInput = {},
  options: { dataDir?: string; clock?: ManualClock; logStream?: { write(line: string): void } } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  const clock = options.clock ?? new ManualClock(Date.now());
  const base: ConfigInput = {
    server: { host: '127.0.0.1', port: 0 },
    dataDir,
    adminKey: 'test-admin-key',
    log: { level: 'silent' },
    limits: { handshakesPerSecondPerIp: 100_000, loginAttemptsPerIp: 1000, customerTokensPerMinutePerIp: 10_000 },
  };
  const config = loadConfig({
    overrides: merge(base as Record<string, unknown>, overrides as Record<string, unknown>),
  });
  const gatehouse = await Gatehouse.create({
    config,
    clock,
    logger: createLogger(config.log.level, options.logStream),
  });
  const { port } = await gatehouse.listen();
  return {
    gatehouse,
    clock,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    adminKey: config.adminKey,
    dataDir,
    async close(closeOptions = {}) {
      await gatehouse.close();
      if (!closeOptions.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** JSON over fetch against the test server. */
export async function api(
  server: { url: string },
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; rawBody?: string } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.rawBody !== undefined) {
    body = options.rawBody;
    headers['content-type'] ??= 'application/json';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(server.url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Creates an agent through the admin API and logs it in. */
export async function agentLogin(server: TestServer, username: string, password = 'correct-horse-battery') {
  const created = await api(server, 'POST', '/api/v1/admin/agents', {
    headers: { 'x-admin-key': server.adminKey },
    body: { username, password, name: `Agent ${username}` },
  });
  if (created.status !== 201 && created.status !== 409)
    throw new Error(`agent create: ${JSON.stringify(created.body)}`);
  const login = await api(server, 'POST', '/api/v1/public/login', { body: { username, password } });
  if (login.status !== 200) throw new Error(`agent login: ${JSON.stringify(login.body)}`);
  return login.body as { token: string; expiresAt: number; user: { id: string; kind: string; name: string } };
}

/** Creates an app key through the admin API. */
export async function createAppKey(server: TestServer, name = 'test app'): Promise<string> {
  const res = await api(server, 'POST', '/api/v1/admin/app-keys', {
    headers: { 'x-admin-key': server.adminKey },
    body: { name },
  });
  if (res.status !== 201) throw new Error(`app key: ${JSON.stringify(res.body)}`);
  return res.body.key as string;
}

/** Logs an IM user in through the open API; returns the bare JWT. */
export async function userToken(server: TestServer, appKey: string, id: string, device = 'im_web'): Promise<string> {
  const res = await api(server, 'POST', '/openapi/v1/user/login', {
    headers: { 'x-app-key': appKey },
    body: { id, nickname: `User ${id}`, device },
  });
  if (res.status !== 200) throw new Error(`user login: ${JSON.stringify(res.body)}`);
  return (res.body.data.token as string).replace(/^Bearer /, '');
}

/** A new anonymous customer with its support session. */
export async function newCustomer(server: TestServer, name = 'Visitor') {
  const res = await api(server, 'POST', '/api/v1/public/customer-token', { body: { name, channel: 'web' } });
  if (res.status !== 200) throw new Error(`customer: ${JSON.stringify(res.body)}`);
  return res.body as { customerId: string; token: string; refreshToken: string; sessionId: string; expiresAt: number };
}
