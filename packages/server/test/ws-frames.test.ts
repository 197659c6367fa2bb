import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { agentLogin, api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import {
  assertAlive,
  Clients,
  createAgent,
  createPasswordUser,
  expectHttpRejection,
  jwtClaims,
  within,
} from './helpers/ws-expect.js';

const PASSWORD = 'correct-horse-battery';

describe('WebSocket frames', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  /** An unauthenticated socket on / and its session id. */
  async function anonymous(): Promise<{ client: TestClient; sessionId: string }> {
    const client = clients.connect(`${server.wsUrl}/`);
    const connected = await client.next('connected');
    return { client, sessionId: connected.body.session_id };
  }

  async function authenticatedAgent(username: string) {
    const agent = await agentLogin(server, username);
    const client = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    const connected = await client.next('connected');
    return { client, agent, sessionId: connected.body.session_id as string };
  }

  async function expectUnauthenticated(client: TestClient): Promise<void> {
    const reply = await client.request({ type: 'whoami' });
    assert.equal(reply.code, 401);
  }

  describe('login', () => {
    it('authenticates the socket with flat username and password and replies with a token', async () => {
      await createAgent(server, 'login-flat');
      const { client, sessionId } = await anonymous();
      const reply = await client.request({ type: 'login', id: 'l1', username: 'login-flat', password: PASSWORD });
      const user = { id: 'login-flat', kind: 'agent', name: 'Agent login-flat' };
      assert.deepEqual(reply, {
        type: 'login',
        id: 'l1',
        code: 200,
        status: 1,
        msg: 'Login successful',
        token: reply.body.token,
        wstoken: reply.wstoken,
        body: { token: reply.body.token, expires_at: reply.body.expires_at, session_id: sessionId, user },
        err_msg: '',
      });
      assert.equal(typeof reply.wstoken, 'string');
      assert.ok(reply.wstoken.length >= 32);
      assert.equal(reply.body.expires_at, jwtClaims(reply.body.token).exp * 1000);
      const whoami = await client.request({ type: 'whoami' });
      assert.deepEqual(whoami.body, { user, session_id: sessionId, expires_at: reply.body.expires_at });
      // The token the login returned works for a handshake.
      const other = clients.connect(`${server.wsUrl}/ws/chat`, {
        headers: { authorization: `Bearer ${reply.body.token}` },
      });
      assert.deepEqual((await other.next('connected')).body.user, user);
    });

    it('accepts the cmd_id 1001 shape with body.username and body.password and echoes cmd_id', async () => {
      await createAgent(server, 'login-cmd');
      const { client, sessionId } = await anonymous();
      client.send({ cmd_id: 1001, body: { username: 'login-cmd', password: PASSWORD, platform: 'web' } });
      const reply = await client.next('login');
      assert.equal(reply.cmd_id, 1001);
      assert.equal(reply.code, 200);
      assert.equal(reply.err_msg, '');
      assert.equal(reply.body.session_id, sessionId);
      assert.deepEqual(reply.body.user, { id: 'login-cmd', kind: 'agent', name: 'Agent login-cmd' });
      assert.equal(typeof reply.body.token, 'string');
      const withId = await anonymous();
      const again = await withId.client.request({
        cmd_id: 1001,
        id: 7,
        body: { username: 'login-cmd', password: PASSWORD },
      });
      assert.equal(again.type, 'login');
      assert.equal(again.cmd_id, 1001);
      assert.equal(again.id, 7);
      assert.equal(again.code, 200);
    });

    it('returns a refresh token to a password user', async () => {
      await createPasswordUser(server, 'login-user');
      const { client } = await anonymous();
      const reply = await client.request({ type: 'login', username: 'login-user', password: PASSWORD });
      assert.equal(reply.code, 200);
      assert.equal(reply.body.user.kind, 'user');
      assert.equal(typeof reply.body.refresh_token, 'string');
    });

    it('answers a wrong password with 401 LOGIN_FAILED and lets the client try again', async () => {
      await createAgent(server, 'login-wrong');
      const { client } = await anonymous();
      const failed = await client.request({ type: 'login', id: 'bad', username: 'login-wrong', password: 'nope' });
      assert.deepEqual(failed, {
        type: 'login',
        id: 'bad',
        code: 401,
        status: 0,
        msg: failed.err_msg,
        body: null,
        error: 'LOGIN_FAILED',
        err_msg: failed.err_msg,
      });
      assert.ok(failed.err_msg.length > 0);
      await expectUnauthenticated(client);
      const ok = await client.request({ type: 'login', username: 'login-wrong', password: PASSWORD });
      assert.equal(ok.code, 200);
    });

    it('refuses a login frame without a password with 400 INVALID_REQUEST', async () => {
      const { client } = await anonymous();
      const reply = await client.request({ type: 'login', username: 'someone' });
      assert.equal(reply.code, 400);
      assert.equal(reply.error, 'INVALID_REQUEST');
    });
  });

  describe('auth', () => {
    it('authenticates the socket with an access token', async () => {
      const token = await userToken(server, appKey, 'auth-token');
      const { client, sessionId } = await anonymous();
      const reply = await client.request({ type: 'auth', id: 'a1', token });
      const user = { id: 'auth-token', kind: 'user', name: 'User auth-token' };
      assert.deepEqual(reply, {
        type: 'auth',
        id: 'a1',
        code: 200,
        body: { user, session_id: sessionId, expires_at: jwtClaims(token).exp * 1000 },
        err_msg: '',
      });
      assert.deepEqual((await client.request({ type: 'whoami' })).body.user, user);
    });

    it('authenticates the socket with a connect ticket, once', async () => {
      const token = await userToken(server, appKey, 'auth-ticket');
      const issued = await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${token}` } });
      assert.equal(issued.status, 200);
      const { client } = await anonymous();
      const reply = await client.request({ type: 'auth', token: issued.body.ticket });
      assert.equal(reply.code, 200);
      assert.equal(reply.body.user.id, 'auth-ticket');
      const second = await anonymous();
      const reused = await second.client.request({ type: 'auth', token: issued.body.ticket });
      assert.equal(reused.code, 401);
      assert.equal(reused.error, 'TOKEN_INVALID');
      await expectUnauthenticated(second.client);
    });

    it('authenticates a socket only once when two auth frames race', async () => {
      const first = await userToken(server, appKey, 'race-auth-1');
      const second = await userToken(server, appKey, 'race-auth-2');
      const { client } = await anonymous();
      client.send({ type: 'auth', id: 'one', token: first });
      client.send({ type: 'auth', id: 'two', token: second });
      const replies = [await client.next((f) => f.id === 'one'), await client.next((f) => f.id === 'two')];
      const accepted = replies.filter((r) => r.code === 200);
      const refused = replies.filter((r) => r.code !== 200);
      assert.equal(accepted.length, 1, `one auth succeeds (got ${replies.map((r) => r.code)})`);
      assert.equal(refused[0]?.code, 400);
      assert.equal(refused[0]?.error, 'INVALID_REQUEST');
      const user = accepted[0]?.body.user;
      assert.deepEqual((await client.request({ type: 'whoami' })).body.user, user);
      const other = user.id === 'race-auth-1' ? 'race-auth-2' : 'race-auth-1';
      const registry = server.gatehouse.services.gateway.registry;
      assert.equal(registry.ofPrincipal(other).length, 0, 'the socket is not indexed under the refused principal');
      client.close();
      await within(client.closed, 'raced socket');
      assert.equal(registry.ofPrincipal(user.id).length, 0, 'nothing is left behind after close');
    });

    it('authenticates a socket only once when login and auth race', async () => {
      await createAgent(server, 'race-login-agent');
      const token = await userToken(server, appKey, 'race-login-user');
      const { client } = await anonymous();
      client.send({ type: 'login', id: 'login', username: 'race-login-agent', password: PASSWORD });
      client.send({ type: 'auth', id: 'auth', token });
      const replies = [await client.next((f) => f.id === 'login'), await client.next((f) => f.id === 'auth')];
      assert.deepEqual(replies.map((r) => r.code).sort(), [200, 400]);
      const user = replies.find((r) => r.code === 200)?.body.user;
      assert.deepEqual((await client.request({ type: 'whoami' })).body.user, user);
      const registry = server.gatehouse.services.gateway.registry;
      assert.equal(registry.ofPrincipal('race-login-agent').length + registry.ofPrincipal('race-login-user').length, 1);
    });

    it('answers a bad token with 401 TOKEN_INVALID and leaves the socket unauthenticated', async () => {
      const { client } = await anonymous();
      const reply = await client.request({ type: 'auth', token: 'not-a-jwt' });
      assert.equal(reply.type, 'auth');
      assert.equal(reply.code, 401);
      assert.equal(reply.error, 'TOKEN_INVALID');
      await expectUnauthenticated(client);
    });
  });

  describe('hello, ping, whoami', () => {
    it('answers hello before authentication without authenticating, and again after', async () => {
      const { client, sessionId } = await anonymous();
      const before = await client.request({ type: 'hello', id: 'h1', version: 1, sdk: 'test' });
      assert.equal(before.type, 'hello');
      assert.equal(before.id, 'h1');
      assert.equal(before.session_id, sessionId);
      assert.equal(before.version, 1);
      assert.equal(before.transport, 'websocket');
      await expectUnauthenticated(client);
      const token = await userToken(server, appKey, 'hello-user');
      assert.equal((await client.request({ type: 'auth', token })).code, 200);
      const afterAuth = await client.request({ type: 'hello', id: 'h2' });
      assert.equal(afterAuth.session_id, sessionId);
      assert.equal(afterAuth.transport, 'websocket');
    });

    it('answers ping with pong and the server time, before and after authentication', async () => {
      const { client } = await anonymous();
      const pong = await client.request({ type: 'ping', id: 'p1' });
      assert.deepEqual(pong, { type: 'pong', id: 'p1', code: 200, ts: server.clock.now() });
      const { client: authed } = await authenticatedAgent('ping-agent');
      authed.send({ cmd_id: 1005 });
      const aliased = await authed.next('pong');
      assert.equal(aliased.cmd_id, 1005);
      assert.equal(aliased.ts, server.clock.now());
    });

    it('answers whoami with user, session_id and expires_at', async () => {
      const { client, agent, sessionId } = await authenticatedAgent('whoami-agent');
      const reply = await client.request({ type: 'whoami', id: 'w1' });
      assert.deepEqual(reply, {
        type: 'whoami',
        id: 'w1',
        code: 200,
        body: { user: agent.user, session_id: sessionId, expires_at: agent.expiresAt },
        err_msg: '',
      });
    });

    it('echoes string and numeric request ids', async () => {
      const { client } = await authenticatedAgent('id-agent');
      for (const id of ['abc', 42, 0, '']) {
        const reply = await client.request({ type: 'whoami', id });
        assert.equal(reply.id, id);
      }
    });
  });

  describe('refresh', () => {
    it('extends the socket with a newer token of the same principal', async () => {
      const { client, agent } = await authenticatedAgent('refresh-agent');
      server.clock.advance(5_000);
      const newer = await agentLogin(server, 'refresh-agent');
      assert.ok(newer.expiresAt > agent.expiresAt);
      const reply = await client.request({ type: 'refresh', id: 'r1', token: newer.token });
      assert.equal(reply.code, 200);
      assert.equal(reply.id, 'r1');
      assert.equal(reply.body.expires_at, newer.expiresAt);
      assert.equal((await client.request({ type: 'whoami' })).body.expires_at, newer.expiresAt);
    });

    it('refuses a token of another principal with 403 FORBIDDEN and keeps the socket', async () => {
      const { client, agent } = await authenticatedAgent('refresh-owner');
      const other = await agentLogin(server, 'refresh-other');
      const reply = await client.request({ type: 'refresh', token: other.token });
      assert.equal(reply.code, 403);
      assert.equal(reply.error, 'FORBIDDEN');
      assert.deepEqual((await client.request({ type: 'whoami' })).body.user, agent.user);
    });

    it('refuses an invalid token with 401 and keeps the socket', async () => {
      const { client } = await authenticatedAgent('refresh-invalid');
      const reply = await client.request({ type: 'refresh', token: 'garbage' });
      assert.equal(reply.code, 401);
      assert.equal(reply.error, 'TOKEN_INVALID');
      await assertAlive(client);
    });
  });

  describe('logout', () => {
    it('closes this socket with 1000 and another socket of the same login session with 4410', async () => {
      const { client, agent } = await authenticatedAgent('logout-agent');
      const sibling = clients.connect(`${server.wsUrl}/ws/chat`, {
        headers: { authorization: `Bearer ${agent.token}` },
      });
      await sibling.next('connected');
      const otherSession = await agentLogin(server, 'logout-agent');
      const unrelated = clients.connect(`${server.wsUrl}/ws/chat`, {
        headers: { authorization: `Bearer ${otherSession.token}` },
      });
      await unrelated.next('connected');

      const reply = await client.request({ type: 'logout', id: 'bye' });
      assert.deepEqual(reply, { type: 'logout', id: 'bye', code: 200, body: null, err_msg: '' });
      assert.equal((await within(client.closed, 'logged-out socket')).code, 1000);
      assert.deepEqual(await sibling.next('kicked'), { type: 'kicked', code: 200, reason: 'REVOKED' });
      assert.deepEqual(await within(sibling.closed, 'sibling socket'), { code: 4410, reason: 'REVOKED' });
      await assertAlive(unrelated);
      const again = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
      await expectHttpRejection(again, 401, 'TOKEN_REVOKED');
    });
  });

  describe('frames an unauthenticated socket may not send', () => {
    it('answers every other frame type with a code 401 reply', async () => {
      const { client } = await anonymous();
      for (const [type, replyType] of [
        ['whoami', 'whoami'],
        ['refresh', 'refresh'],
        ['logout', 'logout'],
        ['history', 'history'],
        ['ack', 'ack'],
        ['message', 'ack'],
      ] as const) {
        const reply = await client.request({ type, id: `u-${type}`, token: 'x', conversation_id: 'c', text: 'hi' });
        assert.equal(reply.type, replyType, `${type} reply type`);
        assert.equal(reply.code, 401, `${type} reply code`);
        assert.equal(reply.body, null);
        assert.equal(typeof reply.error, 'string');
        assert.ok(reply.err_msg.length > 0);
      }
      await assertAlive(client);
    });
  });

  describe('malformed and hostile frames', () => {
    it('answers an unknown type with 400 INVALID_REQUEST echoing the type and id', async () => {
      const { client } = await anonymous();
      const reply = await client.request({ type: 'teleport', id: 'u1' });
      assert.equal(reply.type, 'teleport');
      assert.equal(reply.code, 400);
      assert.equal(reply.error, 'INVALID_REQUEST');
      assert.equal(reply.body, null);
      await assertAlive(client);
    });

    it('treats object-prototype names as unknown types', async () => {
      for (const type of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        // A fresh socket each: unknown types count as malformed frames.
        const { client } = await anonymous();
        const odd = await client.request({ type, id: type });
        assert.equal(odd.code, 400, type);
        assert.equal(odd.error, 'INVALID_REQUEST', type);
        await assertAlive(client);
      }
    });

    it('answers malformed JSON with an INVALID_REQUEST error frame', async () => {
      const { client } = await anonymous();
      client.send('{"type":"ping"');
      const error = await client.next('error');
      assert.equal(error.code, 400);
      assert.equal(error.error, 'INVALID_REQUEST');
      assert.equal(error.body, null);
      await assertAlive(client);
    });

    it('answers JSON that is not an object with an INVALID_REQUEST error frame', async () => {
      const { client } = await anonymous();
      for (const text of ['[1,2]', '42', '"ping"', 'null']) {
        client.send(text);
        const error = await client.next('error');
        assert.equal(error.error, 'INVALID_REQUEST', text);
        assert.equal(error.code, 400, text);
      }
      await assertAlive(client);
    });

    it('answers a frame without a type with an INVALID_REQUEST error', async () => {
      const { client } = await anonymous();
      client.send({ id: 'nt', hello: true });
      const reply = await client.next((f) => f.type === 'error' || f.id === 'nt');
      assert.equal(reply.code, 400);
      assert.equal(reply.error, 'INVALID_REQUEST');
    });

    it('answers a binary frame with an INVALID_REQUEST error frame', async () => {
      const { client } = await anonymous();
      client.ws.send(Buffer.from(JSON.stringify({ type: 'ping' })), { binary: true });
      const error = await client.next('error');
      assert.equal(error.code, 400);
      assert.equal(error.error, 'INVALID_REQUEST');
      await assertAlive(client);
    });

    it('survives __proto__ keys without prototype pollution', async () => {
      const { client, sessionId } = await anonymous();
      client.send('{"type":"hello","id":"proto","__proto__":{"polluted":1}}');
      const hello = await client.next((f) => f.id === 'proto');
      assert.equal(hello.type, 'hello');
      assert.equal(hello.session_id, sessionId);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);

      client.send('{"__proto__":{"type":"whoami"},"id":"proto-type"}');
      const untyped = await client.next((f) => f.type === 'error' || f.id === 'proto-type');
      assert.equal(untyped.code, 400);
      assert.equal(untyped.error, 'INVALID_REQUEST');

      client.send('{"type":"login","id":"proto-login","body":{"__proto__":{"username":"x","password":"y"}}}');
      const login = await client.next((f) => f.id === 'proto-login');
      assert.equal(login.code, 400);
      assert.equal(login.error, 'INVALID_REQUEST');

      client.send('{"type":"auth","id":"proto-auth","__proto__":{"token":"x"},"constructor":{"prototype":{"x":1}}}');
      const auth = await client.next((f) => f.id === 'proto-auth');
      assert.equal(auth.code, 400);

      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(({} as Record<string, unknown>).username, undefined);
      assert.equal(({} as Record<string, unknown>).token, undefined);
      assert.equal(({} as Record<string, unknown>).x, undefined);
      await expectUnauthenticated(client);
      await assertAlive(client);
    });

    it('closes a socket that keeps sending malformed frames with 4400 INVALID_REQUEST', async () => {
      const { client } = await anonymous();
      client.send('not json');
      assert.equal((await client.next('error')).error, 'INVALID_REQUEST');
      await assertAlive(client);
      for (let i = 0; i < 20 && client.ws.readyState === client.ws.OPEN; i++) client.send('{"broken":');
      assert.deepEqual(await within(client.closed, 'malformed close'), { code: 4400, reason: 'INVALID_REQUEST' });
    });
  });
});
