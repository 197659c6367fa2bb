import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { TestClient } from './helpers/ws-client.js';

describe('behind a trusted proxy (server.trustProxy)', () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startServer({ server: { trustProxy: true }, limits: { handshakesPerSecondPerIp: 2 } });
    token = await userToken(server, await createAppKey(server), 'proxied');
  });
  after(() => server.close());

  async function handshake(forwardedFor: string): Promise<number> {
    const client = TestClient.connect(`${server.wsUrl}/ws`, {
      headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': forwardedFor },
    });
    const outcome = await Promise.race([
      client.next('connected').then(() => 101),
      client.rejection.then((r) => r.status),
    ]);
    client.ws.terminate();
    return outcome;
  }

  it('limits handshakes per client address the proxy saw, not per proxy, ignoring what the client claimed', async () => {
    assert.equal(await handshake('10.0.0.1'), 101);
    assert.equal(await handshake('10.0.0.1'), 101);
    assert.equal(await handshake('10.0.0.1'), 429);
    // Another client behind the same proxy is not limited by the first one.
    assert.equal(await handshake('10.0.0.2'), 101);
    // A forged first entry does not matter: the proxy appends the real address last.
    assert.equal(await handshake('10.0.0.9, 10.0.0.1'), 429);
  });
});
