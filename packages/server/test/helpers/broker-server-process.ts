import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private Redis or NATS server process on a free loopback port, for tests that kill and
 * restart their broker (never the machine's shared services on 6379/4222).
 */
export interface BrokerServerProcess {
  readonly url: string;
  readonly port: number;
  /** NATS only: the monitoring endpoint (`/varz` counts the messages the server received). */
  readonly monitorUrl?: string;
  /** SIGKILLs the server (a crash: no goodbye to its clients) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and waits until it accepts connections. */
  start(): Promise<void>;
  /** Kills the server if it runs and removes its folder. */
  stop(): Promise<void>;
}

const READY_WAIT_MS = 10_000;

export function startRedisServer(): Promise<BrokerServerProcess> {
  return startProcess('redis', 'redis-server', (port, dir) => [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]);
}

export async function startNatsServer(): Promise<BrokerServerProcess> {
  const monitorPort = await freePort();
  const server = await startProcess('nats', '/usr/sbin/nats-server', (port) => [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-m',
    String(monitorPort),
  ]);
  return { ...server, monitorUrl: `http://127.0.0.1:${monitorPort}` };
}

/** A port that was free a moment ago (the kernel picked it for a throwaway listener). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function startProcess(
  scheme: string,
  command: string,
  args: (port: number, dir: string) => string[],
): Promise<BrokerServerProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `gatehouse-${scheme}-`));
  let child: ChildProcess | null = null;
  let output = '';
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const launch = async () => {
    output = '';
    const proc = spawn(command, args(port, dir), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-2000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const failed = new Promise<never>((_resolve, reject) => {
      proc.once('error', (err) => reject(new Error(`${command} could not start: ${err.message}`)));
      proc.once('exit', (code) => reject(new Error(`${command} exited with ${code}: ${output}`)));
    });
    failed.catch(() => {});
    await Promise.race([waitForPort(port), failed]);
  };

  const kill = async () => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    kill,
    start: launch,
    async stop() {
      await kill();
      process.removeListener('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${READY_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
