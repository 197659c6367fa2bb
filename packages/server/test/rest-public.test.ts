import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { passwordUser, validate } from './helpers/auth-fixtures.js';
import { agentLogin, api, createAppKey, newCustomer, startServer, type TestServer } from './helpers/test-server.js';

const HOUR = 3_600_000;

describe('password login (POST /api/v1/public/login)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('gives an agent a token, expiresAt and user, and no refresh token', async () => {
    const login = await agentLogin(server, 'login-agent');
    assert.deepEqual(Object.keys(login).sort(), ['expiresAt', 'token', 'user']);
    assert.deepEqual(login.user, { id: 'login-agent', kind: 'agent', name: 'Agent login-agent' });
    assert.equal(login.expiresAt, Math.floor(server.clock.now() / 1000) * 1000 + 8 * HOUR);
    const claims = decodeJwt(login.token);
    assert.equal(claims.sub, 'login-agent');
    assert.equal(claims.kind, 'agent');
    assert.equal(claims.iss, 'gatehouse');
    assert.equal(claims.aud, 'gatehouse');
    assert.equal(typeof claims.sid, 'string');
    assert.equal(typeof claims.jti, 'string');
    assert.equal((claims.exp as number) * 1000, login.expiresAt);
  });

  it('gives an operator-created user a refresh token beside the access token', async () => {
    const login = await passwordUser(server, 'login-user');
    assert.equal(login.user.kind, 'user');
    assert.equal(login.user.id, 'login-user');
    assert.match(login.refresh_token, /^[A-Za-z0-9_-]{40,}$/);
    assert.equal(login.expiresAt, Math.floor(server.clock.now() / 1000) * 1000 + 30 * 24 * HOUR);
  });

  it('puts device_type and device_id into the token as dev and did', async () => {
    await server.gatehouse.services.auth.createAccount({
      kind: 'user',
      username: 'device-user',
      password: 'pw-device',
    });
    const res = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'device-user', password: 'pw-device', device_type: 'im_app_ios', device_id: 'phone-1' },
    });
    assert.equal(res.status, 200);
    const claims = decodeJwt(res.body.token);
    assert.equal(claims.dev, 'im_app_ios');
    assert.equal(claims.did, 'phone-1');
  });

  it('refuses a wrong password with 401 LOGIN_FAILED', async () => {
    await agentLogin(server, 'wrong-pw-agent');
    const res = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'wrong-pw-agent', password: 'not-the-password' },
    });
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'LOGIN_FAILED');
    assert.equal(typeof res.body.message, 'string');
    assert.equal(res.body.token, undefined);
  });

  it('refuses an unknown username exactly like a wrong password', async () => {
    const res = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'nobody-here', password: 'whatever' },
    });
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'LOGIN_FAILED');
  });

  it('refuses a customer or app user without a password', async () => {
    const customer = await newCustomer(server);
    const res = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: customer.customerId, password: 'anything' },
    });
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'LOGIN_FAILED');
  });
});

describe('customer tokens', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('POST /api/v1/public/customer-token returns customerId, token, refreshToken, sessionId and expiresAt', async () => {
    const res = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'Visitor', channel: 'web', email: 'v@example.com', phone: '+100', channelUserId: 'cu-1' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['customerId', 'expiresAt', 'refreshToken', 'sessionId', 'token']);
    assert.match(res.body.customerId, /^[0-9a-f-]{36}$/);
    assert.equal(typeof res.body.sessionId, 'string');
    assert.notEqual(res.body.sessionId, res.body.customerId);
    assert.equal(res.body.expiresAt, Math.floor(server.clock.now() / 1000) * 1000 + 24 * HOUR);
    const claims = decodeJwt(res.body.token);
    assert.equal(claims.sub, res.body.customerId);
    assert.equal(claims.kind, 'customer');
    const check = await validate(server, res.body.token);
    assert.deepEqual(check.body, {
      valid: true,
      type: 'customer',
      customerId: res.body.customerId,
      name: 'Visitor',
      channel: 'web',
      expiresAt: res.body.expiresAt,
    });
  });

  it('gives every call a new customer and a new support session', async () => {
    const a = await newCustomer(server);
    const b = await newCustomer(server);
    assert.notEqual(a.customerId, b.customerId);
    assert.notEqual(a.sessionId, b.sessionId);
  });

  it('POST /api/v1/customers returns id, token, refreshToken, sessionId and expiresAt', async () => {
    const res = await api(server, 'POST', '/api/v1/customers', {
      body: { name: 'Shopper', channel: 'app', metadata: { plan: 'gold' } },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['expiresAt', 'id', 'refreshToken', 'sessionId', 'token']);
    assert.equal(decodeJwt(res.body.token).sub, res.body.id);
    const check = await validate(server, res.body.token);
    assert.equal(check.body.valid, true);
    assert.equal(check.body.customerId, res.body.id);
    assert.equal(check.body.channel, 'app');
  });

  it('POST /api/v1/customers/{id}/token rotates a valid refresh token', async () => {
    const customer = await newCustomer(server);
    const res = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['expiresAt', 'refreshToken', 'sessionId', 'token']);
    assert.notEqual(res.body.refreshToken, customer.refreshToken);
    const claims = decodeJwt(res.body.token);
    assert.equal(claims.sub, customer.customerId);
    assert.equal(claims.sid, decodeJwt(customer.token).sid, 'a refresh stays in the same login session');
    assert.equal((await validate(server, res.body.token)).body.valid, true);
  });

  it('POST /api/v1/customers/token takes the customer id from the body', async () => {
    const customer = await newCustomer(server);
    const res = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: customer.customerId, refreshToken: customer.refreshToken, channel: 'web' },
    });
    assert.equal(res.status, 200);
    assert.equal(decodeJwt(res.body.token).sub, customer.customerId);
    const again = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: customer.customerId, refreshToken: res.body.refreshToken },
    });
    assert.equal(again.status, 200, 'the rotated refresh token works in turn');
  });

  it('never mints a token from a customer id alone', async () => {
    const customer = await newCustomer(server);
    const byPath = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, { body: {} });
    assert.equal(byPath.status, 401);
    assert.equal(byPath.body.error, 'MISSING_TOKEN');
    assert.equal(byPath.body.token, undefined);
    const byBody = await api(server, 'POST', '/api/v1/customers/token', { body: { customerId: customer.customerId } });
    assert.equal(byBody.status, 401);
    assert.equal(byBody.body.token, undefined);
    const empty = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: customer.customerId, refreshToken: '' },
    });
    assert.equal(empty.status, 401);
    assert.equal(empty.body.token, undefined);
    const guessed = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: 'grt_not-a-real-refresh-token' },
    });
    assert.equal(guessed.status, 401);
    assert.equal(guessed.body.error, 'TOKEN_INVALID');
    assert.equal(guessed.body.token, undefined);
  });

  it("refuses another customer's refresh token with 401", async () => {
    const alice = await newCustomer(server, 'Alice');
    const bob = await newCustomer(server, 'Bob');
    const res = await api(server, 'POST', `/api/v1/customers/${bob.customerId}/token`, {
      body: { refreshToken: alice.refreshToken },
    });
    assert.equal(res.status, 401);
    assert.equal(res.body.token, undefined);
    const inBody = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: alice.customerId, refreshToken: bob.refreshToken },
    });
    assert.equal(inBody.status, 401);
    assert.equal(inBody.body.token, undefined);
  });

  it('refuses a refresh token that was already used (past the grace period) with 401', async () => {
    const customer = await newCustomer(server);
    const first = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    assert.equal(first.status, 200);
    server.clock.advance(10_000); // auth.refreshReuseGrace, default 10s
    const reused = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    assert.equal(reused.status, 401);
    assert.equal(reused.body.error, 'TOKEN_REVOKED');
    assert.equal(reused.body.token, undefined);
  });

  it("refuses a user's refresh token on the customer endpoint", async () => {
    const user = await passwordUser(server, 'not-a-customer');
    const res = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: 'not-a-customer', refreshToken: user.refresh_token },
    });
    assert.equal(res.status, 401);
  });
});

describe('GET /api/v1/public/validate-token', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ tokens: { ttl: { agent: '1h' } } });
  });
  after(() => server.close());

  it('describes a valid agent token given in the query', async () => {
    const agent = await agentLogin(server, 'validate-agent');
    const res = await validate(server, agent.token);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      valid: true,
      type: 'agent',
      userId: 'validate-agent',
      name: 'Agent validate-agent',
      expiresAt: agent.expiresAt,
    });
  });

  it('accepts the token as Authorization: Bearer', async () => {
    const agent = await agentLogin(server, 'validate-bearer');
    const res = await api(server, 'GET', '/api/v1/public/validate-token', {
      headers: { authorization: `Bearer ${agent.token}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, true);
    assert.equal(res.body.userId, 'validate-bearer');
  });

  it('answers 200 with TOKEN_INVALID for a garbage token', async () => {
    const res = await validate(server, 'not-a-token');
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, false);
    assert.equal(res.body.error, 'TOKEN_INVALID');
    assert.equal(typeof res.body.message, 'string');
  });

  it('answers 200 with TOKEN_EXPIRED and the kind once the token has expired', async () => {
    const agent = await agentLogin(server, 'validate-expired');
    server.clock.advance(HOUR + 10_000);
    const res = await validate(server, agent.token);
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, false);
    assert.equal(res.body.type, 'agent');
    assert.equal(res.body.error, 'TOKEN_EXPIRED');
  });

  it('answers 200 with TOKEN_REVOKED after logout', async () => {
    const agent = await agentLogin(server, 'validate-revoked');
    const logout = await api(server, 'POST', '/api/v1/auth/logout', {
      headers: { authorization: `Bearer ${agent.token}` },
    });
    assert.equal(logout.status, 204);
    const res = await validate(server, agent.token);
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, false);
    assert.equal(res.body.type, 'agent');
    assert.equal(res.body.error, 'TOKEN_REVOKED');
  });

  it('refuses a call without any token with a 4xx JSON error', async () => {
    const res = await api(server, 'GET', '/api/v1/public/validate-token');
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
    assert.equal(res.body.error, 'MISSING_TOKEN');
    assert.equal(typeof res.body.message, 'string');
  });
});

describe('the open API user login (POST /openapi/v1/user/login)', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server, 'open api app');
  });
  after(() => server.close());

  const login = (key: string | null, body: Record<string, unknown>) =>
    api(server, 'POST', '/openapi/v1/user/login', { headers: key === null ? {} : { 'x-app-key': key }, body });

  it('creates the user and answers in the exact shape clients parse', async () => {
    const res = await login(appKey, {
      id: 'im-1',
      nickname: 'Neo',
      avatar: 'https://example.com/neo.png',
      device: 'im_app_android',
      extras: { vip: true },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['code', 'data', 'msg']);
    assert.equal(res.body.code, 200);
    assert.equal(res.body.msg, 'success');
    assert.deepEqual(Object.keys(res.body.data).sort(), ['imUserVo', 'token']);
    const { imUserVo, token } = res.body.data;
    assert.deepEqual(imUserVo, {
      id: 'im-1',
      nickname: 'Neo',
      avatar: 'https://example.com/neo.png',
      userStatus: 1,
      lastLoginTime: server.clock.now(),
      extras: { vip: true },
    });
    assert.match(token, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = decodeJwt(token.slice('Bearer '.length));
    assert.equal(claims.sub, 'im-1');
    assert.equal(claims.kind, 'user');
    assert.equal(claims.dev, 'im_app_android');
  });

  it('gives a user without avatar null, and without extras {}', async () => {
    const res = await login(appKey, { id: 'im-plain', nickname: 'Plain', device: 'im_web' });
    assert.equal(res.status, 200);
    assert.equal(res.body.data.imUserVo.avatar, null);
    assert.deepEqual(res.body.data.imUserVo.extras, {});
  });

  it('answers userStatus as an integer a typed client parses (1 = normal)', async () => {
    const first = await login(appKey, { id: 'im-status', nickname: 'S', device: 'im_web' });
    assert.ok(Number.isInteger(first.body.data.imUserVo.userStatus));
    assert.equal(first.body.data.imUserVo.userStatus, 1);
  });

  it('updates the nickname on a second login', async () => {
    assert.equal((await login(appKey, { id: 'im-rename', nickname: 'Before', device: 'im_web' })).status, 200);
    server.clock.advance(1000);
    const res = await login(appKey, { id: 'im-rename', nickname: 'After', device: 'im_web' });
    assert.equal(res.status, 200);
    assert.equal(res.body.data.imUserVo.nickname, 'After');
    assert.equal(res.body.data.imUserVo.lastLoginTime, server.clock.now());
    const check = await validate(server, res.body.data.token.slice('Bearer '.length));
    assert.equal(check.body.name, 'After');
  });

  it('refuses an unknown app key with HTTP 401 {code:401, msg}', async () => {
    const res = await login('gak_not-a-key', { id: 'im-2', nickname: 'X', device: 'im_web' });
    assert.equal(res.status, 401);
    assert.equal(res.body.code, 401);
    assert.equal(typeof res.body.msg, 'string');
    assert.equal(res.body.data, undefined);
  });

  it('refuses a missing app key with HTTP 401 {code:401, msg}, even with a bad body', async () => {
    const res = await login(null, { id: 'im-3', nickname: 'X', device: 'im_web' });
    assert.equal(res.status, 401);
    assert.equal(res.body.code, 401);
    assert.equal(typeof res.body.msg, 'string');
    const bad = await login(null, { id: 5 });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.code, 401);
  });

  it('refuses a malformed body with a 400 in the same {code, msg} shape', async () => {
    const res = await login(appKey, { id: 'im-4', nickname: 7, device: 'im_web' });
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 400);
    assert.equal(typeof res.body.msg, 'string');
  });

  it('refuses the same user id from another app with 409', async () => {
    const otherApp = await createAppKey(server, 'other app');
    assert.equal((await login(appKey, { id: 'im-shared', nickname: 'Mine', device: 'im_web' })).status, 200);
    const res = await login(otherApp, { id: 'im-shared', nickname: 'Theirs', device: 'im_web' });
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 409);
    assert.equal(typeof res.body.msg, 'string');
    const owner = await login(appKey, { id: 'im-shared', nickname: 'Mine', device: 'im_web' });
    assert.equal(owner.body.data.imUserVo.nickname, 'Mine', 'the other app changed nothing');
  });

  it('refuses an app user id that belongs to a password account with 409', async () => {
    await agentLogin(server, 'taken-by-agent');
    const res = await login(appKey, { id: 'taken-by-agent', nickname: 'Impostor', device: 'im_web' });
    assert.equal(res.status, 409);
    assert.equal(res.body.code, 409);
  });
});
