import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeClient, tryConnect } from './helpers/auth-fixtures.js';
import { agentLogin, api, startServer, type TestServer } from './helpers/test-server.js';

const PASSWORD = 'correct-horse-battery';

function assertRateLimited(res: { status: number; headers: Headers; body: any }, maxSeconds: number) {
  assert.equal(res.status, 429, JSON.stringify(res.body));
  assert.equal(res.body.error, 'RATE_LIMITED');
  assert.equal(typeof res.body.message, 'string');
  assert.equal(res.body.token, undefined);
  const retryAfter = res.headers.get('retry-after');
  assert.match(retryAfter ?? '', /^\d+$/, 'Retry-After is whole seconds');
  assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= maxSeconds, `Retry-After ${retryAfter}`);
}

describe('login attempts per account', () => {
  let server: TestServer;
  const login = (username: string, password: string) =>
    api(server, 'POST', '/api/v1/public/login', { body: { username, password } });
  before(async () => {
    server = await startServer({ limits: { loginAttemptsPerAccount: 3 } });
    await agentLogin(server, 'limited');
    await agentLogin(server, 'neighbour');
  });
  after(() => server.close());

  it('answers 429 RATE_LIMITED with Retry-After once the failures are used up, even for the right password', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login('limited', 'wrong')).status, 401);
    assertRateLimited(await login('limited', 'wrong'), 15 * 60);
    assertRateLimited(await login('limited', PASSWORD), 15 * 60);
  });

  it('counts parallel guesses: of 20 concurrent attempts only 3 get their password checked', async () => {
    await agentLogin(server, 'parallel');
    const results = await Promise.all(Array.from({ length: 20 }, () => login('parallel', 'wrong')));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(3).fill(401), ...Array(17).fill(429)]);
  });

  it('limits the account, not the caller: another account from the same address still logs in', async () => {
    assert.equal((await login('neighbour', PASSWORD)).status, 200);
  });

  it('counts failed logins for accounts that do not exist', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login('ghost', 'wrong')).status, 401);
    assertRateLimited(await login('ghost', 'wrong'), 15 * 60);
  });

  it('clears the failures of an account after a successful login', async () => {
    await agentLogin(server, 'recovering');
    for (let i = 0; i < 2; i++) assert.equal((await login('recovering', 'wrong')).status, 401);
    assert.equal((await login('recovering', PASSWORD)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await login('recovering', 'wrong')).status, 401);
    assert.equal((await login('recovering', PASSWORD)).status, 200);
  });

  it('applies the same limit to the login frame over the socket', async () => {
    const outcome = await tryConnect(`${server.wsUrl}/`);
    assert.equal(outcome.kind, 'connected');
    if (outcome.kind !== 'connected') return;
    const reply = await outcome.client.request({ type: 'login', username: 'limited', password: PASSWORD });
    assert.equal(reply.code, 429);
    assert.equal(reply.error, 'RATE_LIMITED');
    await closeClient(outcome.client);
  });
});

describe('login attempts per IP address', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ limits: { loginAttemptsPerIp: 3, loginAttemptsPerAccount: 100 } });
    await agentLogin(server, 'ip-victim');
  });
  after(() => server.close());

  it('answers 429 with Retry-After after the failures of one address, whichever accounts they tried', async () => {
    for (const username of ['a1', 'a2', 'a3'])
      assert.equal(
        (await api(server, 'POST', '/api/v1/public/login', { body: { username, password: 'x' } })).status,
        401,
      );
    assertRateLimited(
      await api(server, 'POST', '/api/v1/public/login', { body: { username: 'a4', password: 'x' } }),
      15 * 60,
    );
    assertRateLimited(
      await api(server, 'POST', '/api/v1/public/login', { body: { username: 'ip-victim', password: PASSWORD } }),
      15 * 60,
    );
  });
});

describe('customer tokens per IP address', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ limits: { customerTokensPerMinutePerIp: 2 } });
  });
  after(() => server.close());

  it('answers 429 with Retry-After on both customer endpoints once the minute is used up', async () => {
    const body = { name: 'Visitor', channel: 'web' };
    assert.equal((await api(server, 'POST', '/api/v1/public/customer-token', { body })).status, 200);
    assert.equal((await api(server, 'POST', '/api/v1/customers', { body })).status, 200);
    const before = await server.gatehouse.services.store.countPrincipals();
    assertRateLimited(await api(server, 'POST', '/api/v1/public/customer-token', { body }), 60);
    assertRateLimited(await api(server, 'POST', '/api/v1/customers', { body }), 60);
    assert.deepEqual(await server.gatehouse.services.store.countPrincipals(), before, 'no customer was created');
  });
});
