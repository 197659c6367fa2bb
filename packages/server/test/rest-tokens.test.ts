import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { closeClient, openSocket, passwordUser, tryConnect, validate } from './helpers/auth-fixtures.js';
import { agentLogin, api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('POST /api/refresh-token', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const refresh = (refreshToken: unknown) =>
    api(server, 'POST', '/api/refresh-token', { body: { refresh_token: refreshToken } });

  it('answers {code:200, body:{access_token, refresh_token, expires_at}, err_msg:""}', async () => {
    const login = await passwordUser(server, 'refresh-shape');
    server.clock.advance(5000);
    const res = await refresh(login.refresh_token);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['body', 'code', 'err_msg']);
    assert.equal(res.body.code, 200);
    assert.equal(res.body.err_msg, '');
    assert.deepEqual(Object.keys(res.body.body).sort(), ['access_token', 'expires_at', 'refresh_token']);
    const { access_token, refresh_token, expires_at } = res.body.body;
    assert.notEqual(refresh_token, login.refresh_token);
    assert.ok(expires_at > login.expiresAt, 'the new access token lives longer');
    const claims = decodeJwt(access_token);
    assert.equal(claims.sub, 'refresh-shape');
    assert.equal(claims.sid, decodeJwt(login.token).sid);
    assert.equal((claims.exp as number) * 1000, expires_at);
    assert.equal((await validate(server, access_token)).body.valid, true);
  });

  it('answers an unknown refresh token with HTTP 401 and code:401', async () => {
    const res = await refresh('grt_unknown-refresh-token-value');
    assert.equal(res.status, 401);
    assert.equal(res.body.code, 401);
    assert.equal(typeof res.body.err_msg, 'string');
    assert.notEqual(res.body.err_msg, '');
    assert.equal(res.body.body, null);
  });

  it('answers a missing refresh_token with a 4xx in the same shape', async () => {
    const res = await api(server, 'POST', '/api/refresh-token', { body: {} });
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 400);
    assert.equal(typeof res.body.err_msg, 'string');
    const wrongType = await refresh(12345);
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.body.code, 400);
  });

  it('refuses an access token in place of a refresh token', async () => {
    const login = await passwordUser(server, 'refresh-with-access');
    const res = await refresh(login.token);
    assert.equal(res.status, 401);
    assert.equal(res.body.code, 401);
  });

  it('rotates: the old refresh token stops working and the new one works', async () => {
    const login = await passwordUser(server, 'refresh-rotate');
    const first = await refresh(login.refresh_token);
    assert.equal(first.status, 200);
    const second = await refresh(first.body.body.refresh_token);
    assert.equal(second.status, 200);
    assert.notEqual(second.body.body.refresh_token, first.body.body.refresh_token);
    const old = await refresh(login.refresh_token);
    assert.equal(old.status, 401);
    assert.equal(old.body.code, 401);
  });

  it("rotates a customer's refresh token as well", async () => {
    const customer = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'C', channel: 'web' },
    });
    const res = await refresh(customer.body.refreshToken);
    assert.equal(res.status, 200);
    assert.equal(decodeJwt(res.body.body.access_token).sub, customer.body.customerId);
    assert.notEqual(res.body.body.refresh_token, customer.body.refreshToken);
  });
});

/** The default `auth.refreshReuseGrace`: a spent token presented this long after its rotation is reuse. */
const GRACE_MS = 10_000;

describe('refresh token reuse detection (past the grace period)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('revokes the whole login session: its new access token is refused and its socket closes with 4410', async () => {
    const login = await passwordUser(server, 'reuse-victim');
    const rotated = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: login.refresh_token } });
    assert.equal(rotated.status, 200);
    const newAccess = rotated.body.body.access_token as string;
    const newRefresh = rotated.body.body.refresh_token as string;
    const socket = await openSocket(server, '/ws', newAccess);
    server.clock.advance(GRACE_MS);

    const reuse = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: login.refresh_token } });
    assert.equal(reuse.status, 401);
    assert.equal(reuse.body.code, 401);
    assert.equal(reuse.body.error, 'TOKEN_REVOKED');

    const kicked = await socket.next('kicked');
    assert.equal(kicked.reason, 'REVOKED');
    assert.deepEqual(await socket.closed, { code: 4410, reason: 'REVOKED' });

    const check = await validate(server, newAccess);
    assert.equal(check.body.valid, false);
    assert.equal(check.body.error, 'TOKEN_REVOKED');
    const original = await validate(server, login.token);
    assert.equal(original.body.error, 'TOKEN_REVOKED');

    const handshake = await tryConnect(`${server.wsUrl}/ws`, { headers: bearer(newAccess) });
    assert.equal(handshake.kind, 'rejected');
    if (handshake.kind === 'rejected') {
      assert.equal(handshake.status, 401);
      assert.equal(handshake.code, 'TOKEN_REVOKED');
    }

    const successor = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: newRefresh } });
    assert.equal(successor.status, 401, 'the latest refresh token of the family is revoked too');
  });

  it('leaves the other login sessions of the same principal alone', async () => {
    const first = await passwordUser(server, 'reuse-two-sessions');
    const secondLogin = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'reuse-two-sessions', password: 'user-password-1', device_type: 'im_app_ios' },
    });
    assert.equal(secondLogin.status, 200);
    const other = await openSocket(server, '/ws', secondLogin.body.token);
    await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: first.refresh_token } });
    server.clock.advance(GRACE_MS);
    const reuse = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: first.refresh_token } });
    assert.equal(reuse.status, 401);
    assert.equal((await validate(server, secondLogin.body.token)).body.valid, true);
    const pong = await other.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    await closeClient(other);
  });

  it('revokes a customer session the same way on the customer endpoint', async () => {
    const customer = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'C', channel: 'web' },
    });
    const { customerId, refreshToken } = customer.body;
    const rotated = await api(server, 'POST', `/api/v1/customers/${customerId}/token`, { body: { refreshToken } });
    assert.equal(rotated.status, 200);
    const socket = await openSocket(server, '/ws/chat', rotated.body.token);
    server.clock.advance(GRACE_MS);
    const reuse = await api(server, 'POST', `/api/v1/customers/${customerId}/token`, { body: { refreshToken } });
    assert.equal(reuse.status, 401);
    assert.equal((await socket.next('kicked')).reason, 'REVOKED');
    assert.equal((await socket.closed).code, 4410);
    assert.equal((await validate(server, rotated.body.token)).body.error, 'TOKEN_REVOKED');
  });
});

describe('connect tickets (POST /api/v1/ws-ticket)', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  after(() => server.close());

  it('returns a ticket valid for 30 seconds that opens an authenticated socket once', async () => {
    const token = await userToken(server, appKey, 'ticket-user');
    const res = await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer(token) });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['expiresAt', 'expiresIn', 'ticket']);
    assert.equal(res.body.expiresIn, 30, 'seconds, as existing clients read it');
    assert.equal(res.body.expiresAt, server.clock.now() + 30_000, 'milliseconds since the epoch, as every other time');
    assert.equal(typeof res.body.ticket, 'string');
    assert.ok(!res.body.ticket.includes('.'), 'a ticket is not the JWT');

    const first = await tryConnect(`${server.wsUrl}/ws?ticket=${encodeURIComponent(res.body.ticket)}`);
    assert.equal(first.kind, 'connected');
    if (first.kind === 'connected') {
      assert.equal(first.frame.body.user.id, 'ticket-user');
      assert.equal(first.frame.body.expires_at, decodeJwt(token).exp! * 1000);
      await closeClient(first.client);
    }

    const second = await tryConnect(`${server.wsUrl}/ws?ticket=${encodeURIComponent(res.body.ticket)}`);
    assert.equal(second.kind, 'rejected');
    if (second.kind === 'rejected') {
      assert.equal(second.status, 401);
      assert.equal(second.code, 'TOKEN_INVALID');
    }
  });

  it('refuses a ticket after its 30 seconds', async () => {
    const token = await userToken(server, appKey, 'ticket-late');
    const res = await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer(token) });
    server.clock.advance(31_000);
    const late = await tryConnect(`${server.wsUrl}/ws?ticket=${encodeURIComponent(res.body.ticket)}`);
    assert.equal(late.kind, 'rejected');
    if (late.kind === 'rejected') {
      assert.equal(late.status, 401);
      assert.equal(late.code, 'TOKEN_INVALID');
    }
  });

  it('refuses a ticket whose login session was logged out', async () => {
    const token = await userToken(server, appKey, 'ticket-logged-out');
    const res = await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer(token) });
    assert.equal((await api(server, 'POST', '/api/v1/auth/logout', { headers: bearer(token) })).status, 204);
    const outcome = await tryConnect(`${server.wsUrl}/ws?ticket=${encodeURIComponent(res.body.ticket)}`);
    assert.equal(outcome.kind, 'rejected');
    if (outcome.kind === 'rejected') assert.equal(outcome.code, 'TOKEN_REVOKED');
  });

  it('refuses to issue a ticket without a valid access token', async () => {
    const none = await api(server, 'POST', '/api/v1/ws-ticket');
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'MISSING_TOKEN');
    const bad = await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer('garbage') });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error, 'TOKEN_INVALID');
  });

  it('keeps the kind rules of the endpoint: an agent ticket is refused on /ws', async () => {
    const agent = await agentLogin(server, 'ticket-agent');
    const res = await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer(agent.token) });
    const outcome = await tryConnect(`${server.wsUrl}/ws?ticket=${encodeURIComponent(res.body.ticket)}`);
    assert.equal(outcome.kind, 'rejected');
    if (outcome.kind === 'rejected') {
      assert.equal(outcome.status, 403);
      assert.equal(outcome.code, 'FORBIDDEN');
    }
  });
});

describe('POST /api/v1/auth/logout', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  after(() => server.close());

  it('answers 204 and the token is refused afterwards on REST and in the WebSocket handshake', async () => {
    const token = await userToken(server, appKey, 'logout-user');
    const res = await api(server, 'POST', '/api/v1/auth/logout', { headers: bearer(token) });
    assert.equal(res.status, 204);
    assert.equal(res.body, null);

    const again = await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer(token) });
    assert.equal(again.status, 401);
    assert.equal(again.body.error, 'TOKEN_REVOKED');
    const handshake = await tryConnect(`${server.wsUrl}/ws`, { headers: bearer(token) });
    assert.equal(handshake.kind, 'rejected');
    if (handshake.kind === 'rejected') {
      assert.equal(handshake.status, 401);
      assert.equal(handshake.code, 'TOKEN_REVOKED');
      assert.equal(handshake.body.error, 'TOKEN_REVOKED');
    }
  });

  it("closes the session's live socket with a kicked REVOKED frame and 4410", async () => {
    const token = await userToken(server, appKey, 'logout-live');
    const socket = await openSocket(server, '/ws', token);
    assert.equal((await api(server, 'POST', '/api/v1/auth/logout', { headers: bearer(token) })).status, 204);
    const kicked = await socket.next('kicked');
    assert.equal(kicked.reason, 'REVOKED');
    assert.deepEqual(await socket.closed, { code: 4410, reason: 'REVOKED' });
  });

  it('leaves the other sessions of the principal connected', async () => {
    const web = await userToken(server, appKey, 'logout-two', 'im_web');
    const phone = await userToken(server, appKey, 'logout-two', 'im_app_ios');
    const phoneSocket = await openSocket(server, '/ws', phone);
    assert.equal((await api(server, 'POST', '/api/v1/auth/logout', { headers: bearer(web) })).status, 204);
    assert.equal((await validate(server, phone)).body.valid, true);
    assert.equal((await phoneSocket.request({ type: 'ping' })).type, 'pong');
    await closeClient(phoneSocket);
  });

  it('refuses a logout without a token with 401 MISSING_TOKEN', async () => {
    const res = await api(server, 'POST', '/api/v1/auth/logout');
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'MISSING_TOKEN');
  });
});
