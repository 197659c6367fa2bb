import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import type { EndpointConfig } from '../src/config.js';
import { signToken, userClaims } from './helpers/auth-fixtures.js';
import {
  agentLogin,
  api,
  createAppKey,
  newCustomer,
  startServer,
  type TestServer,
  userToken,
} from './helpers/test-server.js';
import {
  assertAlive,
  Clients,
  createAgent,
  createPasswordUser,
  expectErrorThenClose,
  expectHttpRejection,
  jwtClaims,
  passwordLogin,
  upgradeHeaders,
  within,
} from './helpers/ws-expect.js';

const ALLOWED_ORIGIN = 'https://app.example';

async function ticketFor(server: TestServer, token: string): Promise<string> {
  const res = await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return res.body.ticket;
}

async function logout(server: TestServer, token: string): Promise<void> {
  const res = await api(server, 'POST', '/api/v1/auth/logout', { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 204);
}

describe('WebSocket handshake: where the credential may be', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function expectUser(path: string, options: Parameters<Clients['connect']>[1], id: string) {
    const client = clients.connect(`${server.wsUrl}${path}`, options);
    const connected = await client.next('connected');
    assert.equal(connected.code, 200);
    assert.deepEqual(connected.body.user, { id, kind: 'user', name: `User ${id}` });
    return client;
  }

  it('accepts the token in an Authorization: Bearer header', async () => {
    const token = await userToken(server, appKey, 'cred-authz');
    await expectUser('/ws', { headers: { authorization: `Bearer ${token}` } }, 'cred-authz');
  });

  it('accepts the token in a token header without a Bearer prefix', async () => {
    const token = await userToken(server, appKey, 'cred-token-bare');
    await expectUser('/ws', { headers: { token } }, 'cred-token-bare');
  });

  it('accepts the token in a token header with a Bearer prefix', async () => {
    const token = await userToken(server, appKey, 'cred-token-bearer');
    await expectUser('/ws', { headers: { token: `Bearer ${token}` } }, 'cred-token-bearer');
  });

  it('accepts bearer.<jwt> beside gatehouse.v1 in Sec-WebSocket-Protocol, selects gatehouse.v1 and never echoes the token', async () => {
    const token = await userToken(server, appKey, 'cred-subprotocol');
    const client = clients.connect(`${server.wsUrl}/ws`, { protocols: ['gatehouse.v1', `bearer.${token}`] });
    const headers = upgradeHeaders(client);
    const connected = await client.next('connected');
    assert.equal(connected.body.user.id, 'cred-subprotocol');
    assert.equal(client.ws.protocol, 'gatehouse.v1');
    const response = await headers;
    assert.equal(response['sec-websocket-protocol'], 'gatehouse.v1');
    assert.ok(!JSON.stringify(response).includes(token), 'the token appears in no response header');
  });

  it('accepts the token in the token query parameter', async () => {
    const token = await userToken(server, appKey, 'cred-query-token');
    await expectUser(`/ws?token=${token}`, {}, 'cred-query-token');
  });

  it('accepts the token in the access_token query parameter', async () => {
    const token = await userToken(server, appKey, 'cred-query-access');
    await expectUser(`/ws?access_token=${token}`, {}, 'cred-query-access');
  });

  it('accepts a connect ticket in the ticket query parameter, once', async () => {
    const token = await userToken(server, appKey, 'cred-ticket');
    const ticket = await ticketFor(server, token);
    await expectUser(`/ws?ticket=${encodeURIComponent(ticket)}`, {}, 'cred-ticket');
    const again = clients.connect(`${server.wsUrl}/ws?ticket=${encodeURIComponent(ticket)}`);
    await expectHttpRejection(again, 401, 'TOKEN_INVALID');
  });

  it('accepts the same credential in two places', async () => {
    const token = await userToken(server, appKey, 'cred-twice');
    await expectUser(
      `/ws?token=${token}`,
      { headers: { authorization: `Bearer ${token}`, token }, protocols: ['gatehouse.v1', `bearer.${token}`] },
      'cred-twice',
    );
  });

  it('refuses two places carrying different credentials with 400 INVALID_REQUEST', async () => {
    const first = await userToken(server, appKey, 'cred-diff-1');
    const second = await userToken(server, appKey, 'cred-diff-2');
    const pairs: Parameters<Clients['connect']>[1][] = [
      { headers: { authorization: `Bearer ${first}`, token: second } },
      { headers: { token: first }, protocols: ['gatehouse.v1', `bearer.${second}`] },
      { headers: { authorization: `Bearer ${first}` } },
    ];
    const paths = [`/ws`, `/ws`, `/ws?access_token=${second}`];
    for (const [i, options] of pairs.entries()) {
      const client = clients.connect(`${server.wsUrl}${paths[i]}`, options);
      await expectHttpRejection(client, 400, 'INVALID_REQUEST');
    }
    const queries = clients.connect(`${server.wsUrl}/ws?token=${first}&access_token=${second}`);
    await expectHttpRejection(queries, 400, 'INVALID_REQUEST');
  });

  it('refuses two different credentials on / in the HTTP handshake too', async () => {
    const first = await userToken(server, appKey, 'cred-root-1');
    const second = await userToken(server, appKey, 'cred-root-2');
    const client = clients.connect(`${server.wsUrl}/?token=${second}`, {
      headers: { authorization: `Bearer ${first}` },
    });
    await expectHttpRejection(client, 400, 'INVALID_REQUEST');
  });
});

describe('WebSocket handshake: the three endpoints and their defaults', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('lets a user connect to /ws', async () => {
    const token = await userToken(server, appKey, 'ep-user');
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await client.next('connected')).body.user.kind, 'user');
  });

  it('refuses an agent on /ws with 403 FORBIDDEN', async () => {
    const agent = await agentLogin(server, 'ep-agent-ws');
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${agent.token}` } });
    await expectHttpRejection(client, 403, 'FORBIDDEN');
  });

  it('refuses a customer on /ws with 403 FORBIDDEN', async () => {
    const customer = await newCustomer(server);
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${customer.token}` } });
    await expectHttpRejection(client, 403, 'FORBIDDEN');
  });

  it('lets agents and customers connect to /ws/chat', async () => {
    const agent = await agentLogin(server, 'ep-agent-chat');
    const customer = await newCustomer(server, 'Chat Visitor');
    const a = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    const c = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${customer.token}` } });
    assert.deepEqual((await a.next('connected')).body.user, agent.user);
    assert.deepEqual((await c.next('connected')).body.user, {
      id: customer.customerId,
      kind: 'customer',
      name: 'Chat Visitor',
    });
  });

  it('refuses a user on /ws/chat with 403 FORBIDDEN', async () => {
    const token = await userToken(server, appKey, 'ep-user-chat');
    const client = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${token}` } });
    await expectHttpRejection(client, 403, 'FORBIDDEN');
  });

  it('lets every kind connect to / with a token', async () => {
    const token = await userToken(server, appKey, 'ep-root-user');
    const agent = await agentLogin(server, 'ep-root-agent');
    const customer = await newCustomer(server);
    for (const [credential, kind] of [
      [token, 'user'],
      [agent.token, 'agent'],
      [customer.token, 'customer'],
    ] as const) {
      const client = clients.connect(`${server.wsUrl}/`, { headers: { authorization: `Bearer ${credential}` } });
      assert.equal((await client.next('connected')).body.user.kind, kind);
    }
  });

  it('opens / without a token and sends the unauthenticated connected frame exactly as in SPEC §4', async () => {
    const client = clients.connect(`${server.wsUrl}/`);
    const connected = await client.next('connected');
    assert.equal(typeof connected.body.session_id, 'string');
    assert.ok(connected.body.session_id.length > 0);
    assert.deepEqual(connected, {
      type: 'connected',
      code: 200,
      body: {
        message: 'Connected successfully. Please login or provide token.',
        session_id: connected.body.session_id,
      },
      err_msg: '',
    });
  });

  it('opens / with a bad token, sends the TOKEN_INVALID error frame, and still lets the client log in', async () => {
    await createAgent(server, 'ep-bad-token-agent');
    const client = clients.connect(`${server.wsUrl}/`, { headers: { authorization: 'Bearer not-a-jwt' } });
    const error = await client.next('error');
    assert.deepEqual(error, {
      type: 'error',
      code: 401,
      body: null,
      error: 'TOKEN_INVALID',
      err_msg: 'Token authentication failed. Please login.',
    });
    const login = await client.request({
      type: 'login',
      username: 'ep-bad-token-agent',
      password: 'correct-horse-battery',
    });
    assert.equal(login.code, 200);
    assert.equal(login.body.user.id, 'ep-bad-token-agent');
    const whoami = await client.request({ type: 'whoami' });
    assert.equal(whoami.code, 200);
  });

  it('answers a WebSocket upgrade on an unknown path with 404 and never opens it', async () => {
    const token = await userToken(server, appKey, 'ep-nowhere');
    const client = clients.connect(`${server.wsUrl}/nowhere`, { headers: { authorization: `Bearer ${token}` } });
    const rejection = await within(client.rejection, 'unknown path');
    client.ws.terminate();
    assert.equal(rejection.status, 404);
  });
});

describe('WebSocket handshake: the authenticated connected frame', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('carries message, session_id, user {id, kind, name} and expires_at', async () => {
    const appKey = await createAppKey(server);
    const token = await userToken(server, appKey, 'frame-user');
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
    const connected = await client.next('connected');
    assert.equal(typeof connected.body.session_id, 'string');
    assert.ok(connected.body.session_id.length > 0);
    assert.deepEqual(connected, {
      type: 'connected',
      code: 200,
      body: {
        message: 'Connected and authenticated successfully',
        session_id: connected.body.session_id,
        user: { id: 'frame-user', kind: 'user', name: 'User frame-user' },
        expires_at: jwtClaims(token).exp * 1000,
      },
      err_msg: '',
    });
  });

  it('gives every socket its own session_id', async () => {
    const agent = await agentLogin(server, 'frame-agent');
    const a = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    const b = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    const [ca, cb] = await Promise.all([a.next('connected'), b.next('connected')]);
    assert.notEqual(ca.body.session_id, cb.body.session_id);
  });
});

/** The endpoints with /ws and /ws/chat set to open the socket, send the error frame and close. */
const CLOSE_MODE_ENDPOINTS: EndpointConfig[] = [
  { path: '/ws', kinds: ['user'], tokenRequired: true, rejectMode: 'close' },
  { path: '/ws/chat', kinds: ['customer', 'agent'], tokenRequired: true, rejectMode: 'close' },
  { path: '/', kinds: ['user', 'agent', 'customer'], tokenRequired: false, rejectMode: 'login' },
];

for (const mode of ['http', 'close'] as const) {
  describe(`WebSocket handshake: each refusal code (${mode === 'http' ? 'in the HTTP handshake' : 'open, error frame, close'})`, () => {
    let server: TestServer;
    let appKey: string;
    const clients = new Clients();
    before(async () => {
      server = await startServer({
        tokens: { ttl: { user: '10m' } },
        ws: { allowedOrigins: [ALLOWED_ORIGIN], ...(mode === 'close' ? { endpoints: CLOSE_MODE_ENDPOINTS } : {}) },
      });
      appKey = await createAppKey(server);
    });
    afterEach(() => clients.closeAll());
    after(() => server.close());

    /** Asserts the refusal the way this endpoint mode makes it. */
    async function expectRefused(client: ReturnType<Clients['connect']>, status: number, code: string, close: number) {
      if (mode === 'http') await expectHttpRejection(client, status, code);
      else await expectErrorThenClose(client, status, code, close);
    }

    it('refuses a missing token with 401 MISSING_TOKEN (close 4401)', async () => {
      await expectRefused(clients.connect(`${server.wsUrl}/ws`), 401, 'MISSING_TOKEN', 4401);
      await expectRefused(clients.connect(`${server.wsUrl}/ws/chat`), 401, 'MISSING_TOKEN', 4401);
    });

    it('refuses a malformed or wrongly signed token with 401 TOKEN_INVALID (close 4401)', async () => {
      const token = await userToken(server, appKey, `invalid-${mode}`);
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const tampered = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
      for (const bad of ['garbage', tampered]) {
        const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${bad}` } });
        await expectRefused(client, 401, 'TOKEN_INVALID', 4401);
      }
    });

    it('refuses an expired token with 401 TOKEN_EXPIRED (close 4401)', async () => {
      const token = await userToken(server, appKey, `expired-${mode}`);
      // 10 minutes of lifetime plus the 5 s clock tolerance, in whole seconds.
      server.clock.advance(10 * 60_000 + 10_000);
      const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
      await expectRefused(client, 401, 'TOKEN_EXPIRED', 4401);
    });

    it('refuses with 503 STORE_UNAVAILABLE and Retry-After (close 1013) when the store cannot be read', async () => {
      // A principal and session no cache has seen, so the check must read the store, whose
      // principals table is gone (as a driver error would make it).
      const token = await signToken(server, userClaims(server, { sub: `store-away-${mode}` }));
      const db = (server.gatehouse.services.store as unknown as { db: Database.Database }).db;
      db.exec('ALTER TABLE principals RENAME TO principals_away');
      try {
        const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
        if (mode === 'http') {
          const { headers } = await expectHttpRejection(client, 503, 'STORE_UNAVAILABLE');
          assert.equal(headers['retry-after'], '1');
        } else await expectErrorThenClose(client, 503, 'STORE_UNAVAILABLE', 1013);
        // Logging in on the root endpoint would not help either: refused in HTTP, not opened.
        const root = clients.connect(`${server.wsUrl}/`, { headers: { authorization: `Bearer ${token}` } });
        await expectHttpRejection(root, 503, 'STORE_UNAVAILABLE');
      } finally {
        db.exec('ALTER TABLE principals_away RENAME TO principals');
      }
      const after = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal((await after.next('connected')).body.user.id, `store-away-${mode}`);
    });

    it('refuses a logged-out token with 401 TOKEN_REVOKED (close 4401)', async () => {
      const token = await userToken(server, appKey, `revoked-${mode}`);
      const before = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
      await before.next('connected');
      await logout(server, token);
      assert.equal((await within(before.closed, 'logged-out socket')).code, 4410);
      const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
      await expectRefused(client, 401, 'TOKEN_REVOKED', 4401);
    });

    it('refuses the wrong kind of principal with 403 FORBIDDEN (close 4403)', async () => {
      const agent = await agentLogin(server, `forbidden-agent-${mode}`);
      const user = await userToken(server, appKey, `forbidden-user-${mode}`);
      const onWs = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${agent.token}` } });
      await expectRefused(onWs, 403, 'FORBIDDEN', 4403);
      const onChat = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${user}` } });
      await expectRefused(onChat, 403, 'FORBIDDEN', 4403);
    });

    it('refuses an Origin off the allowlist with 403 ORIGIN_NOT_ALLOWED (close 4403)', async () => {
      const token = await userToken(server, appKey, `origin-${mode}`);
      const allowed = clients.connect(`${server.wsUrl}/ws`, {
        headers: { authorization: `Bearer ${token}` },
        origin: ALLOWED_ORIGIN,
      });
      assert.equal((await allowed.next('connected')).code, 200);
      const client = clients.connect(`${server.wsUrl}/ws`, {
        headers: { authorization: `Bearer ${token}` },
        origin: 'https://evil.example',
      });
      await expectRefused(client, 403, 'ORIGIN_NOT_ALLOWED', 4403);
    });

    it('refuses a device-bound token from another device id, or none, with 403 DEVICE_MISMATCH (close 4403)', async () => {
      const username = `device-bound-${mode}`;
      await createPasswordUser(server, username);
      const login = await passwordLogin(server, username, undefined, { device_type: 'im_web', device_id: 'dev-1' });
      assert.equal(jwtClaims(login.token).did, 'dev-1');
      const auth = { authorization: `Bearer ${login.token}` };
      const other = clients.connect(`${server.wsUrl}/ws`, { headers: { ...auth, 'device-id': 'dev-2' } });
      await expectRefused(other, 403, 'DEVICE_MISMATCH', 4403);
      const none = clients.connect(`${server.wsUrl}/ws`, { headers: auth });
      await expectRefused(none, 403, 'DEVICE_MISMATCH', 4403);
      const same = clients.connect(`${server.wsUrl}/ws?device_id=dev-1`, { headers: auth });
      assert.equal((await same.next('connected')).body.user.id, username);
    });

    it('refuses two different credentials and a malformed device id with 400 INVALID_REQUEST (close 4400)', async () => {
      const first = await userToken(server, appKey, `bad-request-1-${mode}`);
      const second = await userToken(server, appKey, `bad-request-2-${mode}`);
      const twice = clients.connect(`${server.wsUrl}/ws?token=${second}`, {
        headers: { authorization: `Bearer ${first}` },
      });
      await expectRefused(twice, 400, 'INVALID_REQUEST', 4400);
      const badDevice = clients.connect(`${server.wsUrl}/ws?device_id=${encodeURIComponent('not a device id!')}`, {
        headers: { authorization: `Bearer ${first}` },
      });
      await expectRefused(badDevice, 400, 'INVALID_REQUEST', 4400);
    });
  });

  describe(`WebSocket handshake: rate and capacity refusals (${mode === 'http' ? 'in the HTTP handshake' : 'open, error frame, close'})`, () => {
    const clients = new Clients();
    let server: TestServer | null = null;
    afterEach(async () => {
      await clients.closeAll();
      await server?.close();
      server = null;
    });

    const endpoints = mode === 'close' ? { endpoints: CLOSE_MODE_ENDPOINTS } : {};

    it('refuses handshakes over limits.handshakesPerSecondPerIp with 429 RATE_LIMITED (close 4429)', async () => {
      server = await startServer({ limits: { handshakesPerSecondPerIp: 3 }, ws: endpoints });
      const appKey = await createAppKey(server);
      const token = await userToken(server, appKey, 'rate-user');
      // The limit is per real second, so keep opening until one is refused (bounded).
      for (let attempt = 0; attempt < 50; attempt++) {
        const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
        const outcome =
          mode === 'http'
            ? await within(
                Promise.race([client.opened.then(() => 'open'), client.rejection.then(() => 'refused')]),
                'handshake outcome',
              )
            : await client
                .next((f) => f.type === 'connected' || f.type === 'error')
                .then((frame) => {
                  client.frames.unshift(frame);
                  return frame.type === 'connected' ? 'open' : 'refused';
                });
        if (outcome === 'open') continue;
        if (mode === 'http') {
          const { headers } = await expectHttpRejection(client, 429, 'RATE_LIMITED');
          assert.ok(Number(headers['retry-after']) >= 1, 'Retry-After is set');
        } else await expectErrorThenClose(client, 429, 'RATE_LIMITED', 4429);
        return;
      }
      assert.fail('no handshake was rate-limited');
    });

    it('refuses connections over limits.maxConnections with 503 SERVER_BUSY (close 1013)', async () => {
      server = await startServer({ limits: { maxConnections: 2 }, ws: endpoints });
      const appKey = await createAppKey(server);
      const token = await userToken(server, appKey, 'busy-user');
      const headers = { authorization: `Bearer ${token}` };
      const a = clients.connect(`${server.wsUrl}/ws`, { headers: { ...headers, devicetype: 'im_web' } });
      const b = clients.connect(`${server.wsUrl}/ws`, { headers: { ...headers, devicetype: 'im_app_ios' } });
      await Promise.all([a.next('connected'), b.next('connected')]);
      const c = clients.connect(`${server.wsUrl}/ws`, { headers: { ...headers, devicetype: 'im_pc_mac' } });
      if (mode === 'http') await expectHttpRejection(c, 503, 'SERVER_BUSY');
      else await expectErrorThenClose(c, 503, 'SERVER_BUSY', 1013);
      await assertAlive(a);
      await assertAlive(b);
    });

    it('refuses unauthenticated sockets over limits.maxUnauthenticated with 503 SERVER_BUSY', async () => {
      server = await startServer({ limits: { maxUnauthenticated: 1 }, ws: endpoints });
      const first = clients.connect(`${server.wsUrl}/`);
      await first.next('connected');
      await expectHttpRejection(clients.connect(`${server.wsUrl}/`), 503, 'SERVER_BUSY');
      // An authenticated handshake does not count against the unauthenticated cap.
      const agent = await agentLogin(server, 'busy-agent');
      const authed = clients.connect(`${server.wsUrl}/`, { headers: { authorization: `Bearer ${agent.token}` } });
      assert.equal((await authed.next('connected')).body.user.id, 'busy-agent');
    });
  });
}
