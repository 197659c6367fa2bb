import { type ChildProcess, fork } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';

/** The request/reply messages every bench child process speaks over its IPC channel. */
interface RpcRequest {
  rpc: number;
  cmd: string;
  args?: unknown;
}
interface RpcReply {
  rpc: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export type Handlers = Record<string, (args: any) => unknown>;

/**
 * Answers the parent's RPC requests; exits when the parent goes away, so no bench
 * process can outlive the run.
 */
export function serveRpc(handlers: Handlers): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: RpcRequest) => {
    if (!message || typeof message.rpc !== 'number') return;
    const handler = handlers[message.cmd];
    const reply = (body: Omit<RpcReply, 'rpc'>) => process.send?.({ rpc: message.rpc, ...body });
    if (!handler) {
      reply({ ok: false, error: `unknown command ${message.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(message.args))
      .then(
        (result) => reply({ ok: true, result }),
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
}

/** A forked bench process: waits for its `{ready}` message, then takes RPC calls with a time bound. */
export class Child<Ready = unknown> {
  private readonly process: ChildProcess;
  private next = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly ready: Promise<Ready>;
  private exited = false;

  constructor(
    readonly name: string,
    file: URL,
    args: string[] = [],
    execArgv: string[] = [],
    readyTimeoutMs = 60_000,
  ) {
    this.process = fork(file, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise<Ready>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name}: not ready after ${readyTimeoutMs} ms`)),
        readyTimeoutMs,
      );
      this.process.on('message', (message: { ready?: boolean } & Partial<RpcReply>) => {
        if (message?.ready) {
          clearTimeout(timer);
          resolve(message as Ready);
          return;
        }
        if (typeof message?.rpc !== 'number') return;
        const waiter = this.pending.get(message.rpc);
        if (!waiter) return;
        this.pending.delete(message.rpc);
        if (message.ok) waiter.resolve(message.result);
        else waiter.reject(new Error(`${name}: ${message.error}`));
      });
      this.process.on('exit', (code, signal) => {
        this.exited = true;
        clearTimeout(timer);
        const err = new Error(`${name} exited (code ${code}, signal ${signal})`);
        reject(err);
        for (const waiter of this.pending.values()) waiter.reject(err);
        this.pending.clear();
      });
    });
    this.ready.catch(() => {});
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  call<T = unknown>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const rpc = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rpc);
        reject(new Error(`${this.name}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(rpc, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.process.send({ rpc, cmd, args });
    });
  }

  /** Ends the process (SIGKILL after a grace period) and waits for it to be gone. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }
}

/** What a server process reports about itself (measured inside the server process). */
export interface ServerStats {
  /** user + system CPU time of the whole process, µs. */
  cpuUs: number;
  /** The system (kernel) part of cpuUs. */
  systemUs: number;
  rss: number;
  heapUsed: number;
}

export function serverStats(args: { gc?: boolean } | undefined): ServerStats {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (args?.gc && gc) {
    gc();
    gc();
  }
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return { cpuUs: cpu.user + cpu.system, systemUs: cpu.system, rss: memory.rss, heapUsed: memory.heapUsed };
}

/**
 * A server's memory once it has settled: a forced GC every 500 ms until two readings in a
 * row agree within 0.5% (the first reading after a burst of work is often ~10 MB higher).
 */
export async function settledStats(server: Child): Promise<ServerStats> {
  let last = await server.call<ServerStats>('stats', { gc: true });
  for (let i = 0; i < 8; i++) {
    await sleep(500);
    const next = await server.call<ServerStats>('stats', { gc: true });
    const stable = Math.abs(next.rss - last.rss) <= last.rss * 0.005;
    last = next;
    if (stable) break;
  }
  return last;
}

/** The bench's shared signing key: both servers verify HS256 tokens made with it. */
export interface BenchKey {
  kid: string;
  /** base64url, 32 bytes. */
  secret: string;
}

/** Writes the keys file Gatehouse reads (`tokens.keysFile`): the bench's one HS256 key. */
export function writeKeysFile(file: string, key: BenchKey): void {
  writeFileSync(
    file,
    `${JSON.stringify({ signingKid: key.kid, keys: [{ kid: key.kid, alg: 'HS256', secret: key.secret }] })}\n`,
    { mode: 0o600 },
  );
}

export const BENCH_ADMIN_KEY = 'bench-admin-key';

/** Gatehouse limits raised for the bench (everything else is the default configuration). */
export const BENCH_LIMITS = {
  handshakesPerSecondPerIp: 1_000_000,
  maxConnections: 1_000_000,
  messagesPerSecond: 1_000_000,
  maxUnauthenticated: 1_000_000,
};

export const ISSUER = 'gatehouse';
export const AUDIENCE = 'gatehouse';

/** Claims as Gatehouse issues them (packages/server/src/tokens/token-service.ts AccessClaims). */
export function mintToken(
  key: BenchKey,
  claims: { sub: string; kind?: 'user' | 'agent' | 'customer'; name?: string; ttlSeconds?: number },
): string {
  const iat = Math.floor(Date.now() / 1000);
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: key.kid })).toString('base64url');
  const payload = Buffer.from(
    JSON.stringify({
      sub: claims.sub,
      kind: claims.kind ?? 'user',
      sid: randomUUID(),
      name: claims.name ?? claims.sub,
      ver: 0,
      jti: randomUUID(),
      iat,
      exp: iat + (claims.ttlSeconds ?? 3600),
      iss: ISSUER,
      aud: AUDIENCE,
    }),
  ).toString('base64url');
  const input = `${header}.${payload}`;
  const signature = createHmac('sha256', Buffer.from(key.secret, 'base64url')).update(input).digest('base64url');
  return `${input}.${signature}`;
}

/** The same token with its signature changed (a valid-looking token signed with another key). */
export function tamper(token: string): string {
  const dot = token.lastIndexOf('.');
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  signature[0] = (signature[0] ?? 0) ^ 0xff;
  return `${token.slice(0, dot + 1)}${signature.toString('base64url')}`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

/** The text every bench message carries (64 bytes), so both servers move the same payloads. */
export const MESSAGE_TEXT = 'bench message 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKL';
