import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { passwordUser } from './helpers/auth-fixtures.js';
import { api, newCustomer, startServer, type TestServer } from './helpers/test-server.js';

describe('a refresh call that names the wrong principal', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it("does not burn the customer's refresh token: the right call afterwards still rotates it", async () => {
    const alice = await newCustomer(server, 'Alice');
    const bob = await newCustomer(server, 'Bob');
    const wrongPath = await api(server, 'POST', `/api/v1/customers/${bob.customerId}/token`, {
      body: { refreshToken: alice.refreshToken },
    });
    assert.equal(wrongPath.status, 401);
    assert.equal(wrongPath.body.error, 'TOKEN_INVALID');
    const wrongBody = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: bob.customerId, refreshToken: alice.refreshToken },
    });
    assert.equal(wrongBody.status, 401);
    assert.equal(wrongBody.body.error, 'TOKEN_INVALID');

    const right = await api(server, 'POST', `/api/v1/customers/${alice.customerId}/token`, {
      body: { refreshToken: alice.refreshToken },
    });
    assert.equal(right.status, 200, `the right call was refused: ${JSON.stringify(right.body)}`);
    assert.equal(typeof right.body.token, 'string');
    // The session was not revoked as a reuse: the new access token works.
    const check = await api(server, 'GET', `/api/v1/public/validate-token?token=${right.body.token}`);
    assert.equal(check.body.valid, true);
  });

  it("does not burn a user's refresh token presented on the customer endpoint", async () => {
    const user = await passwordUser(server, 'refresh-kind-user');
    const wrongKind = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: 'refresh-kind-user', refreshToken: user.refresh_token },
    });
    assert.equal(wrongKind.status, 401);
    const right = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: user.refresh_token } });
    assert.equal(right.status, 200, `the user's own refresh was refused: ${JSON.stringify(right.body)}`);
    assert.equal(right.body.code, 200);
  });
});
