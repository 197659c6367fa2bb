import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ManualClock } from '../src/clock.js';
import { agentLogin, api, newCustomer, startServer, type TestServer } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import { assertAlive, Clients, createAgent, expectHttpRejection, within } from './helpers/ws-expect.js';

/**
 * Moves the clock to the last whole second before `target` (the sweeper runs once a second
 * from server start, and every test here moves time in whole seconds, so sweeps stay on
 * that grid). One more `clock.advance(1000)` then reaches or passes `target`.
 */
function advanceToJustBefore(clock: ManualClock, target: number): void {
  const step = Math.floor((target - clock.now() - 1) / 1000) * 1000;
  assert.ok(step >= 0, 'target is still ahead');
  clock.advance(step);
  assert.ok(clock.now() < target && clock.now() + 1000 >= target);
}

/** True when no frame of `type` has arrived (checked after a round trip, so nothing is in flight). */
async function noFrameOf(client: TestClient, type: string): Promise<boolean> {
  await assertAlive(client);
  return !client.frames.some((f) => f.type === type);
}

describe('auth timeout', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('closes an unauthenticated socket on / with 4408 AUTH_TIMEOUT after 10 s', async () => {
    const client = clients.connect(`${server.wsUrl}/`);
    await client.next('connected');
    server.clock.advance(9_000);
    await assertAlive(client);
    server.clock.advance(1_000);
    assert.deepEqual(await within(client.closed, 'auth timeout'), { code: 4408, reason: 'AUTH_TIMEOUT' });
  });

  it('also closes a socket that presented a bad token on / and never logged in', async () => {
    const client = clients.connect(`${server.wsUrl}/`, { headers: { authorization: 'Bearer nope' } });
    await client.next('error');
    server.clock.advance(10_000);
    assert.deepEqual(await within(client.closed, 'auth timeout'), { code: 4408, reason: 'AUTH_TIMEOUT' });
  });

  it('keeps a socket that logged in within the timeout, and one authenticated in the handshake', async () => {
    await createAgent(server, 'timeout-agent');
    const anonymous = clients.connect(`${server.wsUrl}/`);
    await anonymous.next('connected');
    const agent = await agentLogin(server, 'timeout-agent');
    const authed = clients.connect(`${server.wsUrl}/`, { headers: { authorization: `Bearer ${agent.token}` } });
    await authed.next('connected');
    server.clock.advance(5_000);
    const login = await anonymous.request({
      type: 'login',
      username: 'timeout-agent',
      password: 'correct-horse-battery',
    });
    assert.equal(login.code, 200);
    server.clock.advance(10_000);
    await assertAlive(anonymous);
    await assertAlive(authed);
  });
});

describe('heartbeat', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('pings after 25 s, keeps a socket that answers and closes a silent one with 4408 HEARTBEAT_TIMEOUT', async () => {
    const agent = await agentLogin(server, 'heartbeat-agent');
    const headers = { authorization: `Bearer ${agent.token}` };
    const normal = clients.connect(`${server.wsUrl}/ws/chat`, { headers });
    const silent = clients.connect(`${server.wsUrl}/ws/chat`, { headers, autoPong: false });
    const sessionId = (await normal.next('connected')).body.session_id;
    await silent.next('connected');
    // The server side of the normal socket, to see its pong arrive without sending any frame
    // (any frame would also count as a sign of life).
    const serverSide = [...server.gatehouse.services.gateway.registry.all].find((c) => c.id === sessionId);
    assert.ok(serverSide, 'server-side connection found');

    let silentPings = 0;
    silent.ws.on('ping', () => silentPings++);
    const pinged = Promise.all([once(normal.ws, 'ping'), once(silent.ws, 'ping'), once(serverSide.ws, 'pong')]);
    server.clock.advance(24_000);
    // A ping written during the advance would reach the client before this reply.
    await assertAlive(silent);
    assert.equal(silentPings, 0, 'no ping before 25 s');
    server.clock.advance(1_000);
    await within(pinged, 'ping, and the pong of the normal socket');

    server.clock.advance(10_000);
    assert.deepEqual(await within(silent.closed, 'silent socket'), { code: 4408, reason: 'HEARTBEAT_TIMEOUT' });
    await assertAlive(normal);
  });
});

describe('token expiry', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    // The heartbeat has its own tests; here it is slowed down so that minutes can pass in
    // one clock.advance without the (then unanswerable) pings closing the sockets.
    server = await startServer({
      tokens: { ttl: { agent: '2m', customer: '5s' } },
      ws: { heartbeatInterval: '1h' },
    });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function connectAgent(username: string) {
    const agent = await agentLogin(server, username);
    const client = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    const connected = await client.next('connected');
    assert.equal(connected.body.expires_at, agent.expiresAt);
    return { client, agent };
  }

  it('sends token_expiring 60 s ahead of expiry, then closes with 4401 TOKEN_EXPIRED at expiry', async () => {
    const { client, agent } = await connectAgent('expiry-agent');
    advanceToJustBefore(server.clock, agent.expiresAt - 60_000);
    assert.ok(await noFrameOf(client, 'token_expiring'), 'no token_expiring before the notice period');
    server.clock.advance(1_000);
    assert.deepEqual(await client.next('token_expiring'), {
      type: 'token_expiring',
      code: 200,
      expires_at: agent.expiresAt,
    });
    advanceToJustBefore(server.clock, agent.expiresAt);
    await assertAlive(client);
    server.clock.advance(1_000);
    const error = await client.next('error');
    assert.equal(error.code, 401);
    assert.equal(error.error, 'TOKEN_EXPIRED');
    // Clients refresh on `code === 401 && err_msg.includes('token expired')`.
    assert.ok(error.err_msg.includes('token expired'), `err_msg: ${error.err_msg}`);
    assert.deepEqual(await within(client.closed, 'expiry close'), { code: 4401, reason: 'TOKEN_EXPIRED' });
  });

  it('keeps the socket open past the old expiry after an in-band refresh, until the new expiry', async () => {
    const { client, agent } = await connectAgent('refresh-agent');
    server.clock.advance(30_000);
    const newer = await agentLogin(server, 'refresh-agent');
    assert.ok(newer.expiresAt > agent.expiresAt);
    const reply = await client.request({ type: 'refresh', token: newer.token });
    assert.equal(reply.code, 200);
    assert.equal(reply.body.expires_at, newer.expiresAt);

    advanceToJustBefore(server.clock, agent.expiresAt);
    server.clock.advance(1_000);
    await assertAlive(client);
    assert.equal((await client.request({ type: 'whoami' })).body.expires_at, newer.expiresAt);
    // The notice is given again for the new expiry.
    const notices = client.frames.filter((f) => f.type === 'token_expiring').map((f) => f.expires_at);
    assert.ok(notices.includes(newer.expiresAt), `token_expiring for the new expiry (got ${notices})`);

    advanceToJustBefore(server.clock, newer.expiresAt);
    await assertAlive(client);
    server.clock.advance(1_000);
    assert.deepEqual(await within(client.closed, 'new expiry close'), { code: 4401, reason: 'TOKEN_EXPIRED' });
  });

  it('closes a socket whose refresh came too late', async () => {
    const { client, agent } = await connectAgent('late-agent');
    advanceToJustBefore(server.clock, agent.expiresAt);
    server.clock.advance(1_000);
    assert.deepEqual(await within(client.closed, 'expiry close'), { code: 4401, reason: 'TOKEN_EXPIRED' });
  });

  it('closes a customer socket 5 s in (tokens.ttl.customer), and refuses that token afterwards', async () => {
    const customer = await newCustomer(server, 'Short Visitor');
    const client = clients.connect(`${server.wsUrl}/ws/chat`, {
      headers: { authorization: `Bearer ${customer.token}` },
    });
    const connected = await client.next('connected');
    assert.equal(connected.body.expires_at, customer.expiresAt);
    assert.ok(customer.expiresAt - server.clock.now() <= 5_000);
    // Shorter than the notice period: the notice comes at the first sweep.
    server.clock.advance(1_000);
    assert.equal((await client.next('token_expiring')).expires_at, customer.expiresAt);
    advanceToJustBefore(server.clock, customer.expiresAt);
    server.clock.advance(1_000);
    assert.deepEqual(await within(client.closed, 'customer expiry'), { code: 4401, reason: 'TOKEN_EXPIRED' });
    // Past the 5 s clock tolerance the handshake refuses the token too.
    server.clock.advance(6_000);
    const again = clients.connect(`${server.wsUrl}/ws/chat`, {
      headers: { authorization: `Bearer ${customer.token}` },
    });
    await expectHttpRejection(again, 401, 'TOKEN_EXPIRED');
  });

  it('keeps a customer socket open with a refreshed customer token', async () => {
    const customer = await newCustomer(server, 'Refreshing Visitor');
    const client = clients.connect(`${server.wsUrl}/ws/chat`, {
      headers: { authorization: `Bearer ${customer.token}` },
    });
    await client.next('connected');
    server.clock.advance(3_000);
    const renewed = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    assert.equal(renewed.status, 200);
    assert.ok(renewed.body.expiresAt > customer.expiresAt);
    const reply = await client.request({ type: 'refresh', token: renewed.body.token });
    assert.equal(reply.code, 200);
    advanceToJustBefore(server.clock, customer.expiresAt);
    server.clock.advance(1_000);
    await assertAlive(client);
    advanceToJustBefore(server.clock, renewed.body.expiresAt);
    server.clock.advance(1_000);
    assert.deepEqual(await within(client.closed, 'renewed expiry'), { code: 4401, reason: 'TOKEN_EXPIRED' });
  });
});

describe('graceful shutdown', () => {
  it('closes live sockets with 1001 and stops accepting', async () => {
    const server = await startServer();
    const clients = new Clients();
    try {
      const agent = await agentLogin(server, 'shutdown-agent');
      const authed = clients.connect(`${server.wsUrl}/ws/chat`, {
        headers: { authorization: `Bearer ${agent.token}` },
      });
      const anonymous = clients.connect(`${server.wsUrl}/`);
      await Promise.all([authed.next('connected'), anonymous.next('connected')]);
      const closing = server.close();
      assert.equal((await within(authed.closed, 'authenticated socket')).code, 1001);
      assert.equal((await within(anonymous.closed, 'unauthenticated socket')).code, 1001);
      await closing;
      const late = clients.connect(`${server.wsUrl}/`);
      await assert.rejects(within(late.opened, 'connect after shutdown'));
    } finally {
      await clients.closeAll();
    }
  });
});
