import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ClientSet } from './helpers/clients.js';
import { record } from './helpers/recorder.js';
import { createAppKey, TestGatehouse, until, userToken } from './helpers/server.js';

/**
 * A TCP proxy in front of the server that can go silent: `freeze()` stops carrying bytes on
 * the connections open now (like a NAT that dropped them), while new connections pass.
 */
class FreezingProxy {
  private readonly pairs: { client: Socket; upstream: Socket; frozen: boolean }[] = [];
  private server!: Server;
  port = 0;

  async listen(target: number): Promise<void> {
    this.server = createServer((client) => {
      const upstream = createConnection(target, '127.0.0.1');
      const pair = { client, upstream, frozen: false };
      this.pairs.push(pair);
      client.on('data', (d) => {
        if (!pair.frozen) upstream.write(d);
      });
      upstream.on('data', (d) => {
        if (!pair.frozen) client.write(d);
      });
      const end = () => {
        if (pair.frozen) return;
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  freeze(): void {
    for (const pair of this.pairs) pair.frozen = true;
  }

  close(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.server.close();
  }
}

describe('GatehouseClient dead-connection detection', { timeout: 60_000 }, () => {
  let server: TestGatehouse;
  let proxy: FreezingProxy;
  let appKey: string;
  const clients = new ClientSet();

  before(async () => {
    server = await TestGatehouse.start();
    appKey = await createAppKey(server);
    proxy = new FreezingProxy();
    await proxy.listen(server.port);
  });
  after(async () => {
    clients.closeAll();
    proxy.close();
    await server.close();
  });

  it('pings a silent connection and reconnects when nothing comes back', async () => {
    const c = clients.make({
      url: `ws://127.0.0.1:${proxy.port}/ws`,
      getToken: () => userToken(server, appKey, 'l-user'),
      pingInterval: 200,
      pongTimeout: 300,
      backoff: { initial: 50, max: 100, spread: 50, long: 100 },
    });
    const rec = record(c);
    await c.connect();
    const first = c.sessionId;
    proxy.freeze();
    await until(() => rec.reconnecting.some((r) => r.reason === 'PING_TIMEOUT'), 'the ping timeout');
    await until(() => c.status === 'connected' && c.sessionId !== first, 'a new connection');
    assert.equal(rec.connected, 2);
    c.close();
  });
});
