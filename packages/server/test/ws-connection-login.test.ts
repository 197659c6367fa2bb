import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { api, startServer, type TestServer } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import { adminConnections, Clients, createPasswordUser, jwtClaims } from './helpers/ws-expect.js';

const PASSWORD = 'correct-horse-battery';

/**
 * Connection-bound login, as clients written in the PHP workerman pattern do it: `login` with
 * `username` and `pwd` (flat or in `body`), then `getuserinfo` with the token; they decide by
 * `status` (1/0) and show `msg`.
 */
describe('connection-bound login frames', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    for (const name of ['wm-flat', 'wm-nested', 'wm-info', 'wm-thief-victim', 'wm-bad-device'])
      await createPasswordUser(server, name);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function anonymous(): Promise<TestClient> {
    const client = clients.connect(`${server.wsUrl}/`);
    assert.equal((await client.next()).type, 'connected');
    return client;
  }

  async function loggedIn(username: string): Promise<{ client: TestClient; reply: any }> {
    const client = await anonymous();
    const reply = await client.request({ type: 'login', username, pwd: PASSWORD });
    assert.equal(reply.status, 1, JSON.stringify(reply));
    return { client, reply };
  }

  it('logs in with pwd and answers status 1, msg, token and wstoken at top level', async () => {
    const { reply } = await loggedIn('wm-flat');
    assert.equal(reply.code, 200);
    assert.equal(typeof reply.msg, 'string');
    assert.ok(reply.msg.length > 0);
    assert.equal(reply.token, reply.body.token);
    assert.equal(jwtClaims(reply.token).sub, 'wm-flat');
    assert.equal(typeof reply.wstoken, 'string');
    assert.notEqual(reply.wstoken, reply.token);
  });

  it('logs in with username, pwd, from_uid, device_id and platform nested in body', async () => {
    const client = await anonymous();
    client.send({
      type: 'login',
      body: { from_uid: 'wm-nested', username: 'wm-nested', pwd: PASSWORD, device_id: 'phone-1', platform: 'android' },
    });
    const reply = await client.next('login');
    assert.equal(reply.status, 1);
    assert.equal(reply.code, 200);
    assert.equal(jwtClaims(reply.token).did, 'phone-1');
    assert.equal(jwtClaims(reply.token).dev, 'im_app_android');
  });

  it('answers a wrong pwd with status 0, code 401 and a msg, and leaves the socket open for another try', async () => {
    const client = await anonymous();
    const reply = await client.request({ type: 'login', username: 'wm-flat', pwd: 'wrong' });
    assert.equal(reply.status, 0);
    assert.equal(reply.code, 401);
    assert.equal(reply.error, 'LOGIN_FAILED');
    assert.equal(reply.msg, reply.err_msg);
    assert.ok(reply.msg.length > 0);
    assert.equal((await client.request({ type: 'login', username: 'wm-flat', pwd: PASSWORD })).status, 1);
  });

  it('answers getuserinfo on the socket that logged in, with the wstoken or the access token', async () => {
    const { client, reply } = await loggedIn('wm-info');
    for (const token of [reply.wstoken, reply.token, `Bearer ${reply.token}`]) {
      const info = await client.request({ type: 'getuserinfo', token });
      assert.equal(info.status, 1, JSON.stringify(info));
      assert.equal(info.code, 200);
      assert.equal(info.type, 'getuserinfo');
      assert.equal(typeof info.msg, 'string');
      assert.deepEqual(info.body.user, { id: 'wm-info', kind: 'user', name: 'User wm-info' });
      assert.equal(info.body.session_id, reply.body.session_id);
      assert.equal(info.body.expires_at, reply.body.expires_at);
    }
  });

  it('answers getuserinfo with status 0 and code 401 on any other socket: a stolen token gives nothing', async () => {
    const { reply } = await loggedIn('wm-thief-victim');
    // A fresh socket that never logged in.
    const fresh = await anonymous();
    for (const token of [reply.token, reply.wstoken]) {
      const info = await fresh.request({ type: 'getuserinfo', token });
      assert.equal(info.status, 0);
      assert.equal(info.code, 401);
      assert.equal(info.body, null);
      assert.match(info.msg, /illegal/i);
    }
    assert.equal((await fresh.request({ type: 'whoami' })).code, 401, 'the fresh socket is still not authenticated');
    // Another socket of the same account, but its own login session.
    const { client: other } = await loggedIn('wm-thief-victim');
    for (const token of [reply.token, reply.wstoken]) {
      const info = await other.request({ type: 'getuserinfo', token });
      assert.equal(info.status, 0);
      assert.equal(info.code, 401);
    }
  });

  it('never spends a connect ticket presented to getuserinfo', async () => {
    const { client, reply } = await loggedIn('wm-info');
    const res = await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${reply.token}` } });
    assert.equal(res.status, 200);
    const info = await client.request({ type: 'getuserinfo', token: res.body.ticket });
    assert.equal(info.status, 0);
    const withTicket = clients.connect(`${server.wsUrl}/?ticket=${res.body.ticket}`);
    assert.equal((await withTicket.next()).code, 200, 'the ticket still opens a socket once');
  });

  it('refuses a login device_id or platform that is not a short identifier, as the handshake and REST do', async () => {
    const client = await anonymous();
    const bad: Record<string, unknown>[] = [
      { device_id: 'x'.repeat(4096) },
      { device_id: 'phone\n1' },
      { platform: 'web\r\nX-Injected: 1' },
      { platform: 'x'.repeat(129) },
      { platform: 42 },
      { body: { device_id: 'a b' } },
    ];
    for (const fields of bad) {
      const { body, ...flat } = fields;
      const reply = await client.request({
        type: 'login',
        ...flat,
        ...(body ? { body: { username: 'wm-bad-device', password: PASSWORD, ...(body as object) } } : {}),
        ...(body ? {} : { username: 'wm-bad-device', password: PASSWORD }),
      });
      assert.equal(reply.code, 400, JSON.stringify(fields).slice(0, 80));
      assert.equal(reply.error, 'INVALID_REQUEST');
      assert.equal(reply.status, 0);
    }
    assert.equal((await client.request({ type: 'whoami' })).code, 401, 'none of them logged in');
    assert.deepEqual(await adminConnections(server, 'wm-bad-device'), []);
    const ok = await client.request({
      type: 'login',
      username: 'wm-bad-device',
      password: PASSWORD,
      device_id: 'x'.repeat(128),
      platform: 'im_web',
    });
    assert.equal(ok.status, 1);
  });
});
