import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WAIT_MS } from './ws-client.js';

/** The compiled CLI beside this compiled helper (dist/test/helpers → dist/src/cli.js). */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli.js');

export interface ServerProcess {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT */
  wsUrl: string;
  adminKey: string;
  /** Resolves when the process has exited (with its signal, if killed). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `gatehouse serve` as a separate process on a free loopback port, so a test can kill it
 * with SIGKILL and start it again on the same data folder. Resolves once it printed the
 * "gatehouse listening" log line with its URL.
 */
export function spawnServer(
  dataDir: string,
  options: { adminKey?: string; env?: Record<string, string> } = {},
): Promise<ServerProcess> {
  const adminKey = options.adminKey ?? 'process-admin-key';
  const child = spawn(process.execPath, [CLI, 'serve', '--data-dir', dataDir, '--port', '0', '--host', '127.0.0.1'], {
    env: {
      ...process.env,
      GATEHOUSE_ADMIN_KEY: adminKey,
      GATEHOUSE_LIMITS_HANDSHAKES_PER_SECOND_PER_IP: '100000',
      GATEHOUSE_LIMITS_MESSAGES_PER_SECOND: '100000',
      GATEHOUSE_LOG_LEVEL: 'info', // the "listening" line is at info
      GATEHOUSE_DEMO_SEED: 'false',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${2 * WAIT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 2 * WAIT_MS);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"gatehouse listening"/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      const url = match[1] as string;
      resolve({ child, url, wsUrl: url.replace(/^http/, 'ws'), adminKey, exited });
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before serving\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}
