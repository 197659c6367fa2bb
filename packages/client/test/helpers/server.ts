import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Gatehouse, loadConfig, ManualClock } from '@gatehouse/server';

/** How long a test waits for something that should happen; a bound, not a timing assertion. */
export const WAIT_MS = 10_000;

const ADMIN_KEY = 'client-test-admin-key';

/** A free loopback port (so a server can be restarted on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function merge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] ? merge(out[k], v) : v;
  return out;
}

export interface Api {
  url: string;
  wsUrl: string;
  adminKey: string;
}

/**
 * A real Gatehouse in this process on a fixed loopback port with a real SQLite data folder
 * and a ManualClock; `stop()` then `start()` restarts it on the same port and data.
 */
export class TestGatehouse implements Api {
  gatehouse: Gatehouse | null = null;
  readonly adminKey = ADMIN_KEY;
  readonly url: string;
  readonly wsUrl: string;

  private constructor(
    readonly port: number,
    readonly dataDir: string,
    readonly clock: ManualClock,
    private readonly overrides: Record<string, unknown>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}`;
  }

  static async start(overrides: Record<string, unknown> = {}): Promise<TestGatehouse> {
    const server = new TestGatehouse(
      await freePort(),
      mkdtempSync(join(tmpdir(), 'gatehouse-client-test-')),
      new ManualClock(Date.now()),
      overrides,
    );
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    const base = {
      server: { host: '127.0.0.1', port: this.port },
      dataDir: this.dataDir,
      adminKey: ADMIN_KEY,
      log: { level: 'silent' },
      demo: { seed: false },
      limits: { handshakesPerSecondPerIp: 100_000, loginAttemptsPerIp: 1000, customerTokensPerMinutePerIp: 10_000 },
    };
    const config = loadConfig({ overrides: merge(base, this.overrides) as any });
    this.gatehouse = await Gatehouse.create({ config, clock: this.clock });
    await this.gatehouse.listen();
  }

  /** Graceful stop: sockets close with 1001. */
  async stop(): Promise<void> {
    await this.gatehouse?.close();
    this.gatehouse = null;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** The CLI of the server package, compiled. */
const CLI = join(dirname(createRequire(import.meta.url).resolve('@gatehouse/server')), 'cli.js');

/**
 * `gatehouse serve` as a child process on a fixed port, so a test can SIGKILL it (no close
 * frames: clients see 1006) and start it again on the same port and data folder.
 */
export class ServerProcess implements Api {
  child: ChildProcess | null = null;
  readonly adminKey = ADMIN_KEY;
  readonly url: string;
  readonly wsUrl: string;

  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}`;
  }

  static async start(): Promise<ServerProcess> {
    const server = new ServerProcess(await freePort(), mkdtempSync(join(tmpdir(), 'gatehouse-client-proc-')));
    await server.start();
    return server;
  }

  start(): Promise<void> {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--data-dir', this.dataDir, '--port', String(this.port), '--host', '127.0.0.1'],
      {
        env: {
          ...process.env,
          GATEHOUSE_ADMIN_KEY: ADMIN_KEY,
          GATEHOUSE_LIMITS_HANDSHAKES_PER_SECOND_PER_IP: '100000',
          GATEHOUSE_LIMITS_MESSAGES_PER_SECOND: '100000',
          // info: the `gatehouse listening` line on stdout says the node serves.
          GATEHOUSE_LOG_LEVEL: 'info',
          GATEHOUSE_DEMO_SEED: 'false',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    let out = '';
    let err = '';
    child.stderr?.on('data', (c: Buffer) => {
      err += c.toString();
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start\n${out}\n${err}`)), WAIT_MS);
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('"msg":"gatehouse listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code ?? signal})\n${out}\n${err}`));
      });
    });
  }

  /** SIGKILL: no close frame reaches any client. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.removeAllListeners('exit');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = null;
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** JSON over fetch. */
export async function api(
  server: Api,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(server.url + path, {
    method,
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, body };
}

export const admin = (server: Api) => ({ 'x-admin-key': server.adminKey });

export async function createAppKey(server: Api): Promise<string> {
  const res = await api(server, 'POST', '/api/v1/admin/app-keys', { headers: admin(server), body: { name: 'app' } });
  if (res.status !== 201) throw new Error(`app key: ${JSON.stringify(res.body)}`);
  return res.body.key;
}

/** An IM user's token from the open API (what an app's backend does in `getToken`). */
export async function userToken(server: Api, appKey: string, id: string, device = 'im_web'): Promise<string> {
  const res = await api(server, 'POST', '/openapi/v1/user/login', {
    headers: { 'x-app-key': appKey },
    body: { id, nickname: `User ${id}`, device },
  });
  if (res.status !== 200) throw new Error(`user login: ${JSON.stringify(res.body)}`);
  return String(res.body.data.token).replace(/^Bearer /, '');
}

/** Creates an agent (admin API) and returns its REST login. */
export async function agentLogin(server: Api, username: string, password = 'agent-password-1') {
  await api(server, 'POST', '/api/v1/admin/agents', {
    headers: admin(server),
    body: { username, password, name: `Agent ${username}` },
  });
  const res = await api(server, 'POST', '/api/v1/public/login', { body: { username, password } });
  if (res.status !== 200) throw new Error(`agent login: ${JSON.stringify(res.body)}`);
  return res.body as { token: string; user: { id: string } };
}

export async function newCustomer(server: Api) {
  const res = await api(server, 'POST', '/api/v1/public/customer-token', { body: { name: 'Visitor', channel: 'web' } });
  if (res.status !== 200) throw new Error(`customer: ${JSON.stringify(res.body)}`);
  return res.body as { customerId: string; token: string; sessionId: string };
}

/** Resolves when `predicate` holds, checked after every event of `emitter` (and now). */
export function until(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}
