import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { passwordUser, serverSigningKey, signToken, userClaims } from './helpers/auth-fixtures.js';
import { agentLogin, api, startServer, type TestServer } from './helpers/test-server.js';
import type { Frame } from './helpers/ws-client.js';
import { Clients, expectHttpRejection, within } from './helpers/ws-expect.js';

/** What client code in the wild does: refresh when a 401 says the token expired. */
const saysExpired = (code: unknown, message: unknown): boolean =>
  code === 401 && typeof message === 'string' && message.includes('token expired');

const HOUR = 3_600_000;

describe('every refusal of an expired token says "token expired"', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    // Slow heartbeats, so that hours can pass in one clock.advance without pings closing sockets.
    server = await startServer({ ws: { heartbeatInterval: '24h' }, tokens: { refreshTtl: { user: '1h' } } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  /** An agent token (8 h) whose expiry, tolerance included, has passed. */
  async function expiredAgentToken(username: string): Promise<string> {
    const { token } = await agentLogin(server, username);
    server.clock.advance(8 * HOUR + 10_000);
    return token;
  }

  it('in the HTTP handshake: the JSON body and X-WebSocket-Error-Message', async () => {
    const token = await expiredAgentToken('expired-handshake');
    const client = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${token}` } });
    const rejection = await expectHttpRejection(client, 401, 'TOKEN_EXPIRED');
    assert.ok(saysExpired(rejection.body.code, rejection.body.err_msg), JSON.stringify(rejection.body));
    assert.ok(String(rejection.headers['x-websocket-error-message']).includes('token expired'));
  });

  it('on the root endpoint: the error frame', async () => {
    const token = await expiredAgentToken('expired-root');
    const client = clients.connect(`${server.wsUrl}/?token=${token}`);
    const error = await client.next('error');
    assert.equal(error.error, 'TOKEN_EXPIRED');
    assert.ok(saysExpired(error.code, error.err_msg), JSON.stringify(error));
    // The socket stays open for an in-band login.
    assert.equal(client.ws.readyState, client.ws.OPEN);
  });

  it('on a live socket: the frame before the 4401 close', async () => {
    const { token } = await agentLogin(server, 'expired-live');
    const client = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${token}` } });
    await client.next('connected');
    server.clock.advance(8 * HOUR + 2_000);
    const error = await client.next((f: Frame) => f.type === 'error');
    assert.ok(saysExpired(error.code, error.err_msg), JSON.stringify(error));
    assert.deepEqual(await within(client.closed, 'expiry close'), { code: 4401, reason: 'TOKEN_EXPIRED' });
  });

  it('in the reply to an in-band auth or refresh frame', async () => {
    const token = await expiredAgentToken('expired-auth-frame');
    const anonymous = clients.connect(`${server.wsUrl}/`);
    await anonymous.next('connected');
    const authReply = await anonymous.request({ type: 'auth', token });
    assert.ok(saysExpired(authReply.code, authReply.err_msg), JSON.stringify(authReply));

    const fresh = await agentLogin(server, 'expired-refresh-frame');
    const live = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${fresh.token}` } });
    await live.next('connected');
    const refreshReply = await live.request({ type: 'refresh', token });
    assert.ok(saysExpired(refreshReply.code, refreshReply.err_msg), JSON.stringify(refreshReply));
  });

  it("in validate-token's message", async () => {
    const token = await expiredAgentToken('expired-validate');
    const res = await api(server, 'GET', `/api/v1/public/validate-token?token=${token}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, false);
    assert.equal(res.body.error, 'TOKEN_EXPIRED');
    assert.ok(res.body.message.includes('token expired'), res.body.message);
  });

  it('in REST 401s', async () => {
    const token = await expiredAgentToken('expired-rest');
    for (const [method, path] of [
      ['POST', '/api/v1/ws-ticket'],
      ['POST', '/api/v1/auth/logout'],
      ['GET', '/api/v1/conversations'],
    ] as const) {
      const res = await api(server, method, path, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal(res.body.error, 'TOKEN_EXPIRED', `${method} ${path}`);
      assert.ok(saysExpired(res.status, res.body.message), `${method} ${path}: ${JSON.stringify(res.body)}`);
    }
  });

  it('for an expired refresh token on /api/refresh-token', async () => {
    const user = await passwordUser(server, 'expired-refresh-token');
    server.clock.advance(HOUR + 1_000);
    const res = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: user.refresh_token } });
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'TOKEN_EXPIRED');
    assert.ok(saysExpired(res.body.code, res.body.err_msg), JSON.stringify(res.body));
  });

  it('for a ticket whose access token expired meanwhile', async () => {
    const { token } = await agentLogin(server, 'expired-ticket');
    server.clock.advance(8 * HOUR - 10_000);
    const issued = await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(issued.status, 200);
    // 20 s later the ticket (30 s) is still good, the access token it stands for is not.
    server.clock.advance(20_000);
    const client = clients.connect(`${server.wsUrl}/ws/chat?ticket=${issued.body.ticket}`);
    const rejection = await expectHttpRejection(client, 401, 'TOKEN_EXPIRED');
    assert.ok(saysExpired(rejection.body.code, rejection.body.err_msg), JSON.stringify(rejection.body));
  });
});

describe('malformed tokens are told which part is wrong', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  const b64 = (value: string) => Buffer.from(value).toString('base64url');

  /** The message of the refusal at the /ws handshake and at validate-token (the two must agree). */
  async function refusals(token: string, authorization = `Bearer ${token}`): Promise<string[]> {
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization } });
    const rejection = await expectHttpRejection(client, 401, 'TOKEN_INVALID');
    assert.equal(rejection.headers['x-websocket-error-message'], rejection.body.err_msg);
    const res = await api(server, 'GET', '/api/v1/public/validate-token', { headers: { authorization } });
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, false);
    assert.equal(res.body.error, 'TOKEN_INVALID');
    return [rejection.body.err_msg, res.body.message];
  }

  async function assertMalformed(token: string, what: RegExp, authorization?: string) {
    for (const message of await refusals(token, authorization)) {
      assert.match(message, /^malformed token: /, `${token.slice(0, 40)}: ${message}`);
      assert.match(message, what, `${token.slice(0, 40)}: ${message}`);
      assert.doesNotMatch(message, /algorithm or key id/);
    }
  }

  it('bad.bad.bad: the header is not base64url JSON', async () => {
    await assertMalformed('bad.bad.bad', /header/);
  });

  it('a doubled Bearer prefix', async () => {
    const token = await signToken(server, userClaims(server));
    await assertMalformed(token, /Bearer/, `Bearer Bearer ${token}`);
  });

  it('not three parts', async () => {
    const token = await signToken(server, userClaims(server));
    const [h, p] = token.split('.') as [string, string, string];
    for (const bad of ['garbage', `${h}.${p}`, `${token}.x`, `${h}..x`, `.${p}.x`])
      await assertMalformed(bad, /three .*parts/);
  });

  it('a header that is not JSON, or not a JSON object, or without alg', async () => {
    const token = await signToken(server, userClaims(server));
    const [, p, s] = token.split('.') as [string, string, string];
    await assertMalformed(`${b64('{not json')}.${p}.${s}`, /header is not JSON/);
    await assertMalformed(`${b64('[1]')}.${p}.${s}`, /header is not a JSON object/);
    await assertMalformed(`${b64('{"typ":"JWT"}')}.${p}.${s}`, /header has no "alg"/);
  });

  it('a payload or signature that is not base64url', async () => {
    const token = await signToken(server, userClaims(server));
    const [h, p, s] = token.split('.') as [string, string, string];
    await assertMalformed(`${h}.${p}!.${s}`, /payload is not base64url/);
    await assertMalformed(`${h}.${p}.${s}=`, /signature is not base64url/);
  });

  it('says "algorithm or key id is not accepted" only for a readable header with the wrong alg or kid', async () => {
    const { kid } = serverSigningKey(server);
    const token = await signToken(server, userClaims(server));
    const [, p, s] = token.split('.') as [string, string, string];
    for (const header of [
      { alg: 'HS512', typ: 'JWT', kid },
      { alg: 'none', typ: 'JWT' },
      { alg: 'HS256', typ: 'JWT', kid: 'unknown-kid' },
    ])
      for (const message of await refusals(`${b64(JSON.stringify(header))}.${p}.${s}`))
        assert.equal(message, 'token algorithm or key id is not accepted');
  });
});
