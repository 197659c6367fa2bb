import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import { Clients, createAgent, expectHttpRejection } from './helpers/ws-expect.js';

/**
 * The root endpoint as the clients written from the integration documents use it: open
 * `/` (with or without `?token=`), read exactly ONE frame, and decide by its `code`.
 */
async function firstFrame(client: TestClient) {
  return client.next();
}

describe('root endpoint /: the first frame decides', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ tokens: { ttl: { user: '10m' } } });
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('answers a token that fails with the 401 TOKEN_INVALID error as the first frame, then still lets the client log in', async () => {
    await createAgent(server, 'root-first-frame-agent');
    const client = clients.connect(`${server.wsUrl}/?token=not-a-jwt`);
    const frame = await firstFrame(client);
    assert.equal(frame.code, 401, `the first frame was ${JSON.stringify(frame)}`);
    assert.deepEqual(frame, {
      type: 'error',
      code: 401,
      body: null,
      error: 'TOKEN_INVALID',
      err_msg: 'Token authentication failed. Please login.',
    });
    const login = await client.request({
      type: 'login',
      username: 'root-first-frame-agent',
      password: 'correct-horse-battery',
    });
    assert.equal(login.code, 200);
    assert.ok(
      !client.frames.some((f) => f.type === 'connected'),
      'no connected frame follows the refusal: the login reply is the answer',
    );
  });

  it('tells an expired token on / in the first frame, with "token expired" in err_msg', async () => {
    const token = await userToken(server, appKey, 'root-expired');
    server.clock.advance(10 * 60_000 + 10_000);
    const client = clients.connect(`${server.wsUrl}/?token=${token}`);
    const frame = await firstFrame(client);
    assert.equal(frame.code, 401);
    assert.equal(frame.type, 'error');
    assert.equal(frame.body, null);
    assert.ok(frame.err_msg.includes('token expired'), `err_msg: ${frame.err_msg}`);
  });

  it('keeps connected 200 as the first frame without any credential', async () => {
    const client = clients.connect(`${server.wsUrl}/`);
    const frame = await firstFrame(client);
    assert.equal(frame.code, 200);
    assert.equal(frame.type, 'connected');
    assert.equal(frame.body.message, 'Connected successfully. Please login or provide token.');
  });

  it('sends connected 200 first for a good token', async () => {
    const token = await userToken(server, appKey, 'root-good');
    const client = clients.connect(`${server.wsUrl}/?token=${token}`);
    const frame = await firstFrame(client);
    assert.equal(frame.code, 200);
    assert.equal(frame.body.user.id, 'root-good');
  });
});

describe('root endpoint /: limits.maxUnauthenticated', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ limits: { maxUnauthenticated: 1 } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('counts a socket opened with a bad credential against the cap, and refuses the next one with 503 SERVER_BUSY', async () => {
    const first = clients.connect(`${server.wsUrl}/`);
    assert.equal((await first.next()).type, 'connected');
    const bad = clients.connect(`${server.wsUrl}/`, { headers: { authorization: 'Bearer not-a-jwt' } });
    await expectHttpRejection(bad, 503, 'SERVER_BUSY');
    const badQuery = clients.connect(`${server.wsUrl}/?token=bad.bad.bad`);
    await expectHttpRejection(badQuery, 503, 'SERVER_BUSY');
    assert.equal(server.gatehouse.services.gateway.registry.unauthenticated, 1);
  });
});
