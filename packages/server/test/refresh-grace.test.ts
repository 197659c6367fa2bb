import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { closeClient, openSocket, passwordUser, validate } from './helpers/auth-fixtures.js';
import { api, newCustomer, startServer, type TestServer } from './helpers/test-server.js';

/** The default `auth.refreshReuseGrace`. */
const GRACE_MS = 10_000;

/** The customer refresh route: `{status, token, refreshToken, error}`. */
async function rotate(server: TestServer, customerId: string, refreshToken: string) {
  const res = await api(server, 'POST', `/api/v1/customers/${customerId}/token`, { body: { refreshToken } });
  return {
    status: res.status,
    token: res.body.token as string,
    refreshToken: res.body.refreshToken as string,
    error: res.body.error as string | undefined,
  };
}

describe('refresh rotation: the grace period for a page closed mid-refresh', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('answers the just-rotated token again within the window: a new pair for the same session, the socket stays', async () => {
    const customer = await newCustomer(server);
    const socket = await openSocket(server, '/ws/chat', customer.token);
    const lost = await rotate(server, customer.customerId, customer.refreshToken);
    assert.equal(lost.status, 200);
    // The answer never reached the page; after a reload it presents the token it still has.
    server.clock.advance(GRACE_MS - 1);
    const again = await rotate(server, customer.customerId, customer.refreshToken);
    assert.equal(again.status, 200, `the grace answer was refused: ${again.error}`);
    assert.notEqual(again.refreshToken, lost.refreshToken);
    assert.equal(decodeJwt(again.token).sid, decodeJwt(customer.token).sid, 'the same login session');
    assert.equal(decodeJwt(again.token).sub, customer.customerId);
    assert.equal((await validate(server, again.token)).body.valid, true);
    assert.equal((await socket.request({ type: 'ping' })).type, 'pong', 'nothing was revoked');
    // The pair it got rotates on as usual.
    const next = await rotate(server, customer.customerId, again.refreshToken);
    assert.equal(next.status, 200);
    await closeClient(socket);
  });

  it('at the end of the window it is reuse again: the session is revoked', async () => {
    const customer = await newCustomer(server);
    const socket = await openSocket(server, '/ws/chat', customer.token);
    const rotated = await rotate(server, customer.customerId, customer.refreshToken);
    server.clock.advance(GRACE_MS);
    const late = await rotate(server, customer.customerId, customer.refreshToken);
    assert.deepEqual([late.status, late.error], [401, 'TOKEN_REVOKED']);
    assert.deepEqual(await socket.closed, { code: 4410, reason: 'REVOKED' });
    assert.equal((await rotate(server, customer.customerId, rotated.refreshToken)).status, 401);
  });

  it('answers once: a second replay of the same token within the window revokes the session', async () => {
    const customer = await newCustomer(server);
    const socket = await openSocket(server, '/ws/chat', customer.token);
    await rotate(server, customer.customerId, customer.refreshToken);
    const grace = await rotate(server, customer.customerId, customer.refreshToken);
    assert.equal(grace.status, 200);
    const twice = await rotate(server, customer.customerId, customer.refreshToken);
    assert.deepEqual([twice.status, twice.error], [401, 'TOKEN_REVOKED']);
    assert.equal((await socket.closed).code, 4410);
    assert.equal((await rotate(server, customer.customerId, grace.refreshToken)).status, 401);
    assert.equal((await validate(server, grace.token)).body.error, 'TOKEN_REVOKED');
  });

  it('answers only the immediately previous token: once its successor was used, presenting it revokes', async () => {
    const customer = await newCustomer(server);
    const first = await rotate(server, customer.customerId, customer.refreshToken);
    const second = await rotate(server, customer.customerId, first.refreshToken);
    assert.equal(second.status, 200);
    server.clock.advance(1000);
    const old = await rotate(server, customer.customerId, customer.refreshToken);
    assert.deepEqual([old.status, old.error], [401, 'TOKEN_REVOKED']);
    assert.equal((await rotate(server, customer.customerId, second.refreshToken)).status, 401);
  });

  it("a thief replaying a stolen token within the window forks nothing: the victim's next refresh revokes both", async () => {
    const victim = await newCustomer(server);
    const held = await rotate(server, victim.customerId, victim.refreshToken);
    const stolen = await rotate(server, victim.customerId, victim.refreshToken);
    assert.equal(stolen.status, 200, 'inside the window the server cannot tell a thief from a reload');
    const thiefSocket = await openSocket(server, '/ws/chat', stolen.token);
    // The victim's token was the grace answer's casualty: presenting it is reuse.
    const victimNext = await rotate(server, victim.customerId, held.refreshToken);
    assert.deepEqual([victimNext.status, victimNext.error], [401, 'TOKEN_REVOKED']);
    assert.deepEqual(await thiefSocket.closed, { code: 4410, reason: 'REVOKED' });
    assert.equal((await rotate(server, victim.customerId, stolen.refreshToken)).status, 401);
    assert.equal((await validate(server, stolen.token)).body.error, 'TOKEN_REVOKED');
  });

  it('the lost successor, if it turns up after a grace answer, is reuse: someone else holds it', async () => {
    const customer = await newCustomer(server);
    const lost = await rotate(server, customer.customerId, customer.refreshToken);
    const grace = await rotate(server, customer.customerId, customer.refreshToken);
    const found = await rotate(server, customer.customerId, lost.refreshToken);
    assert.deepEqual([found.status, found.error], [401, 'TOKEN_REVOKED']);
    assert.equal((await validate(server, grace.token)).body.error, 'TOKEN_REVOKED');
  });

  it('gives a blocked customer nothing, in the window or not', async () => {
    const customer = await newCustomer(server);
    await rotate(server, customer.customerId, customer.refreshToken);
    const block = await api(server, 'POST', `/api/v1/admin/principals/${customer.customerId}/block`, {
      headers: { 'x-admin-key': server.adminKey },
    });
    assert.equal(block.status, 200);
    const grace = await rotate(server, customer.customerId, customer.refreshToken);
    assert.equal(grace.status, 403);
    assert.equal(grace.token, undefined);
  });

  it('applies to user refresh tokens on POST /api/refresh-token the same way', async () => {
    const login = await passwordUser(server, 'grace-user');
    const lost = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: login.refresh_token } });
    assert.equal(lost.status, 200);
    server.clock.advance(5000);
    const again = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: login.refresh_token } });
    assert.equal(again.status, 200);
    assert.equal(again.body.code, 200);
    assert.equal(decodeJwt(again.body.body.access_token).sid, decodeJwt(login.token).sid);
    const twice = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: login.refresh_token } });
    assert.equal(twice.status, 401);
    assert.equal(twice.body.error, 'TOKEN_REVOKED');
  });
});

describe('auth.refreshReuseGrace 0', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ auth: { refreshReuseGrace: 0 } });
  });
  after(() => server.close());

  it('turns the grace period off: the spent token revokes the session at once', async () => {
    const customer = await newCustomer(server);
    const rotated = await rotate(server, customer.customerId, customer.refreshToken);
    assert.equal(rotated.status, 200);
    const again = await rotate(server, customer.customerId, customer.refreshToken);
    assert.deepEqual([again.status, again.error], [401, 'TOKEN_REVOKED']);
    assert.equal((await rotate(server, customer.customerId, rotated.refreshToken)).status, 401);
  });
});
