import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gatehouse, loadConfig } from '@gatehouse/server';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const ADMIN_KEY = 'web-test-admin-key';
/** How long a test waits for something that should happen: a bound, not a timing assertion. */
export const WAIT_MS = 15_000;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A real Gatehouse on a fixed loopback port and data folder: `stop()` + `start()` is a restart. */
export class WebGatehouse {
  gatehouse: Gatehouse | null = null;
  readonly url: string;

  private constructor(
    readonly port: number,
    readonly dataDir: string,
    private readonly overrides: Record<string, unknown>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(overrides: Record<string, unknown> = {}): Promise<WebGatehouse> {
    const server = new WebGatehouse(await freePort(), mkdtempSync(join(tmpdir(), 'gatehouse-web-test-')), overrides);
    await server.start();
    return server;
  }

  get services() {
    if (!this.gatehouse) throw new Error('the server is stopped');
    return this.gatehouse.services;
  }

  async start(): Promise<void> {
    const config = loadConfig({
      overrides: {
        ...this.overrides,
        server: { ...(this.overrides.server as object), host: '127.0.0.1', port: this.port },
        dataDir: this.dataDir,
        adminKey: ADMIN_KEY,
        log: { level: 'silent' },
        demo: { seed: false },
        limits: { handshakesPerSecondPerIp: 100_000, loginAttemptsPerIp: 1000, customerTokensPerMinutePerIp: 10_000 },
      } as never,
    });
    this.gatehouse = await Gatehouse.create({ config });
    await this.gatehouse.listen();
  }

  async stop(): Promise<void> {
    await this.gatehouse?.close();
    this.gatehouse = null;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Another origin (its own loopback port) serving one page: how a customer's site embeds the widget. */
export class HostPage {
  private server!: Server;
  url = '';

  constructor(private readonly html: () => string) {}

  async listen(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      if ((req.url ?? '/').split('?')[0] !== '/') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(this.html());
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
