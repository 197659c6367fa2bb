import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { signToken, userClaims } from './helpers/auth-fixtures.js';
import { api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import { adminConnections, Clients, createPasswordUser, jwtClaims, within } from './helpers/ws-expect.js';

/**
 * Device type aliases (SPEC §3): `ios`, `android`, `web`, `win`/`windows`/`pc`, `mac`, in any
 * case, name the `im_*` types wherever a device type enters, so one type is one slot.
 */
describe('device type aliases', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function open(path: string, token: string, headers: Record<string, string> = {}): Promise<TestClient> {
    const client = clients.connect(`${server.wsUrl}${path}`, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
    assert.equal((await client.next('connected')).code, 200);
    return client;
  }

  async function deviceTypesOf(principal: string): Promise<string[]> {
    return (await adminConnections(server, principal)).map((c) => c.device_type).sort();
  }

  async function expectReplaced(older: TestClient): Promise<void> {
    assert.equal((await older.next('kicked')).reason, 'REPLACED');
    assert.equal((await within(older.closed, 'replaced socket')).code, 4409);
  }

  it('takes the alias in the deviceType header and the canonical name in the query for one slot', async () => {
    const token = await userToken(server, appKey, 'alias-header');
    const first = await open('/ws', token, { devicetype: 'Android' });
    assert.deepEqual(await deviceTypesOf('alias-header'), ['im_app_android']);
    await open('/ws?device_type=im_app_android', token);
    await expectReplaced(first);
    assert.deepEqual(await deviceTypesOf('alias-header'), ['im_app_android']);
  });

  it('normalises the platform query and every alias of the Windows type', async () => {
    const token = await userToken(server, appKey, 'alias-platform');
    const web = await open('/ws?platform=WEB', token);
    await open('/ws', token, { devicetype: 'im_web' });
    await expectReplaced(web);
    let previous = await open('/ws?device_type=win', token);
    for (const alias of ['windows', 'PC', 'im_pc_win']) {
      const next = await open(`/ws?device_type=${alias}`, token);
      await expectReplaced(previous);
      previous = next;
    }
    assert.deepEqual(await deviceTypesOf('alias-platform'), ['im_pc_win', 'im_web']);
  });

  it('issues open-API tokens with the canonical dev, and the token then holds that slot', async () => {
    const token = await userToken(server, appKey, 'alias-open-api', 'android');
    assert.equal(jwtClaims(token).dev, 'im_app_android');
    const fromToken = await open('/ws', token);
    await open('/ws', token, { devicetype: 'ANDROID' });
    await expectReplaced(fromToken);
  });

  it("reads an alias in a token's dev claim as the canonical type", async () => {
    const token = await signToken(server, userClaims(server, { sub: 'alias-claim', dev: 'ios' }));
    const fromClaim = await open('/ws', token);
    assert.deepEqual(await deviceTypesOf('alias-claim'), ['im_app_ios']);
    await open('/ws', token, { devicetype: 'im_app_ios' });
    await expectReplaced(fromClaim);
  });

  it('normalises the platform of an in-band login', async () => {
    await createPasswordUser(server, 'alias-login');
    const client = clients.connect(`${server.wsUrl}/`);
    await client.next('connected');
    const reply = await client.request({
      type: 'login',
      username: 'alias-login',
      password: 'correct-horse-battery',
      platform: 'Mac',
    });
    assert.equal(reply.code, 200);
    assert.equal(jwtClaims(reply.body.token).dev, 'im_pc_mac');
    assert.deepEqual(await deviceTypesOf('alias-login'), ['im_pc_mac']);
  });

  it('kicks by alias through the admin API', async () => {
    const token = await userToken(server, appKey, 'alias-kick');
    const ios = await open('/ws', token, { devicetype: 'im_app_ios' });
    const web = await open('/ws', token, { devicetype: 'web' });
    const res = await api(server, 'POST', '/api/v1/admin/principals/alias-kick/kick', {
      headers: { 'x-admin-key': server.adminKey },
      body: { deviceType: 'IOS' },
    });
    assert.ok(res.status < 300, `kick answered ${res.status}`);
    // `closed` counts the sockets of the canonical type the alias names.
    assert.equal(res.body.closed, 1);
    assert.equal((await within(ios.closed, 'kicked socket')).code, 4410);
    assert.equal(web.ws.readyState, web.ws.OPEN);
  });

  it('reads GET /api/v1/conversations?device_type= with an alias as the canonical type', async () => {
    const token = await userToken(server, appKey, 'alias-conversations', 'im_app_ios');
    const headers = { authorization: `Bearer ${token}` };
    for (const alias of ['android', 'ANDROID', 'im_app_android']) {
      const res = await api(server, 'GET', `/api/v1/conversations?device_type=${alias}`, { headers });
      assert.equal(res.status, 200);
      assert.equal(res.body.device_type, 'im_app_android', alias);
    }
    const custom = await api(server, 'GET', '/api/v1/conversations?device_type=Kiosk-7', { headers });
    assert.equal(custom.body.device_type, 'Kiosk-7');
    // Absent or empty: the token's device type.
    for (const query of ['', '?device_type=']) {
      const res = await api(server, 'GET', `/api/v1/conversations${query}`, { headers });
      assert.equal(res.status, 200);
      assert.equal(res.body.device_type, 'im_app_ios', query);
    }
    const bad = await api(server, 'GET', '/api/v1/conversations?device_type=a%20b', { headers });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'INVALID_REQUEST');
  });

  it('keeps any other well-formed device type as it is (its own slot), as docs/protocol.md says', async () => {
    const token = await userToken(server, appKey, 'alias-custom');
    await open('/ws', token, { devicetype: 'Kiosk-7' });
    await open('/ws', token, { devicetype: 'kiosk-7' });
    assert.deepEqual(await deviceTypesOf('alias-custom'), ['Kiosk-7', 'kiosk-7']);
  });
});
