import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { agentLogin, startServer, type TestServer } from './helpers/test-server.js';

const PASSWORD = 'correct-horse-battery';

/**
 * A password login sent from a given loopback address (127.0.0.0/8 all reach the server on
 * 127.0.0.1), so that several real client IPs can be used without a proxy.
 */
function loginFrom(server: TestServer, ip: string, username: string, password: string) {
  const body = JSON.stringify({ username, password });
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = request(
      `${server.url}/api/v1/public/login`,
      { method: 'POST', localAddress: ip, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('login limits: account + IP strictly, the account from all IPs more loosely', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      limits: { loginAttemptsPerAccountAndIp: 3, loginAttemptsPerAccount: 8, loginAttemptsPerIp: 1000 },
    });
    await agentLogin(server, 'victim');
    await agentLogin(server, 'target');
  });
  after(() => server.close());

  it("an attacker's IP that used up its attempts does not stop the owner logging in from another IP", async () => {
    const attacker = '127.0.0.2';
    for (let i = 0; i < 3; i++) assert.equal((await loginFrom(server, attacker, 'victim', 'wrong')).status, 401);
    // The attacker keeps trying; each try is refused and spends nothing of the account-wide limit.
    for (let i = 0; i < 12; i++) {
      const res = await loginFrom(server, attacker, 'victim', 'wrong');
      assert.equal(res.status, 429);
      assert.equal(res.body.error, 'RATE_LIMITED');
    }
    assert.equal((await loginFrom(server, attacker, 'victim', PASSWORD)).status, 429, 'even the right password');

    const owner = await loginFrom(server, '127.0.0.3', 'victim', PASSWORD);
    assert.equal(owner.status, 200, JSON.stringify(owner.body));
    assert.equal(typeof owner.body.token, 'string');
  });

  it('still stops a distributed attack at the account-wide limit, for every IP', async () => {
    // Eight failures from four addresses, none of which reaches its own limit of three.
    for (const ip of ['127.0.1.1', '127.0.1.2', '127.0.1.3', '127.0.1.4'])
      for (let i = 0; i < 2; i++) assert.equal((await loginFrom(server, ip, 'target', 'wrong')).status, 401);
    const next = await loginFrom(server, '127.0.1.5', 'target', 'wrong');
    assert.equal(next.status, 429);
    assert.equal(next.body.error, 'RATE_LIMITED');
    assert.equal((await loginFrom(server, '127.0.1.6', 'target', PASSWORD)).status, 429);
  });
});
