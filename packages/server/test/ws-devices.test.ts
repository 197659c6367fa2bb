import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { agentLogin, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import { adminConnections, assertAlive, Clients, within } from './helpers/ws-expect.js';

/** Asserts that `client` was replaced: a `kicked` REPLACED frame, then close 4409. */
async function expectReplaced(client: TestClient): Promise<void> {
  assert.deepEqual(await client.next('kicked'), { type: 'kicked', code: 200, reason: 'REPLACED' });
  assert.deepEqual(await within(client.closed, 'replaced socket'), { code: 4409, reason: 'REPLACED' });
}

/** Session ids of the principal's open connections of one device type, per the admin API. */
async function openSessions(server: TestServer, principal: string, deviceType?: string): Promise<string[]> {
  const connections = await adminConnections(server, principal);
  return connections
    .filter((c) => deviceType === undefined || c.device_type === deviceType)
    .map((c) => c.session_id)
    .sort();
}

describe('device slots (SPEC §7)', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function connectUser(token: string, query = '', headers: Record<string, string> = {}) {
    const client = clients.connect(`${server.wsUrl}/ws${query}`, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
    const connected = await client.next('connected');
    return { client, sessionId: connected.body.session_id as string };
  }

  it('closes the older socket of the same device type with kicked REPLACED and 4409', async () => {
    const token = await userToken(server, appKey, 'slot-user', 'im_web');
    const a = await connectUser(token);
    const b = await connectUser(token);
    await expectReplaced(a.client);
    await assertAlive(b.client);
    assert.deepEqual(await openSessions(server, 'slot-user'), [b.sessionId]);
  });

  it('lets sockets of different device types of one user coexist', async () => {
    const web = await userToken(server, appKey, 'multi-user', 'im_web');
    const ios = await userToken(server, appKey, 'multi-user', 'im_app_ios');
    const a = await connectUser(web);
    const b = await connectUser(ios);
    // A device type declared in the handshake takes precedence over the token's.
    const c = await connectUser(web, '?device_type=im_pc_mac');
    const d = await connectUser(web, '', { devicetype: 'im_app_android' });
    for (const { client } of [a, b, c, d]) await assertAlive(client);
    const connections = await adminConnections(server, 'multi-user');
    assert.deepEqual(connections.map((x) => x.device_type).sort(), [
      'im_app_android',
      'im_app_ios',
      'im_pc_mac',
      'im_web',
    ]);
  });

  it('lets an agent hold any number of sockets by default', async () => {
    const agent = await agentLogin(server, 'many-agent');
    const sockets: TestClient[] = [];
    for (let i = 0; i < 3; i++) {
      const client = clients.connect(`${server.wsUrl}/ws/chat`, {
        headers: { authorization: `Bearer ${agent.token}` },
      });
      await client.next('connected');
      sockets.push(client);
    }
    for (const client of sockets) await assertAlive(client);
    assert.equal((await adminConnections(server, 'many-agent')).length, 3);
  });

  it('ends every reconnect race of one device with exactly one open socket, the last one authenticated', async () => {
    const token = await userToken(server, appKey, 'race-user', 'im_app_ios');
    let current = await connectUser(token);

    /** A socket of the same device: authenticated in the handshake, or in-band with `auth` on /. */
    async function open(inBand: boolean) {
      if (!inBand) return connectUser(token);
      const client = clients.connect(`${server.wsUrl}/`, { headers: { devicetype: 'im_app_ios' } });
      const sessionId = (await client.next('connected')).body.session_id as string;
      const reply = await client.request({ type: 'auth', token });
      assert.equal(reply.code, 200);
      return { client, sessionId };
    }

    for (let round = 0; round < 20; round++) {
      const [b, c] = await Promise.all([open(false), open(round % 2 === 1)]);
      await expectReplaced(current.client);
      const loser = await within(
        Promise.race([b.client.closed.then(() => b), c.client.closed.then(() => c)]),
        `round ${round}: one of the two newer sockets is replaced`,
      );
      const survivor = loser === b ? c : b;
      await expectReplaced(loser.client);
      await assertAlive(survivor.client);
      assert.deepEqual(
        await openSessions(server, 'race-user', 'im_app_ios'),
        [survivor.sessionId],
        `round ${round}: the device has exactly the surviving socket`,
      );
      current = survivor;
    }
    assert.equal(current.client.frames.filter((f) => f.type === 'kicked').length, 0);
  });

  it('never lets an old socket closing late remove the slot of the socket that replaced it', async () => {
    const web = await userToken(server, appKey, 'late-user', 'im_web');
    const ios = await userToken(server, appKey, 'late-user', 'im_app_ios');
    const a = await connectUser(web);
    // A stops reading: it neither sees its kick nor answers the close handshake until resumed,
    // so the server only sees it close after B and C have taken their slots.
    const aSocket = (a.client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    aSocket.pause();
    const b = await connectUser(web);
    const c = await connectUser(ios);
    const registry = server.gatehouse.services.gateway.registry;
    assert.ok(
      [...registry.all].some((conn) => conn.id === a.sessionId),
      'A is still registered on the server until its late close',
    );
    aSocket.resume();
    await expectReplaced(a.client);
    for (let i = 0; i < 50 && [...registry.all].some((conn) => conn.id === a.sessionId); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(![...registry.all].some((conn) => conn.id === a.sessionId), 'A has closed on the server too');

    // B still receives frames: a direct message from another user reaches it.
    const senderToken = await userToken(server, appKey, 'late-sender', 'im_web');
    const sender = await connectUser(senderToken);
    const ack = await sender.client.request({ type: 'message', to: 'late-user', text: 'still there?' });
    assert.equal(ack.code, 200);
    assert.equal((await b.client.next('message')).message.text, 'still there?');
    assert.equal((await c.client.next('message')).message.text, 'still there?');
    assert.deepEqual(await openSessions(server, 'late-user'), [b.sessionId, c.sessionId].sort());

    // And B still holds the im_web slot: the next im_web socket replaces B, not C.
    const d = await connectUser(web);
    await expectReplaced(b.client);
    await assertAlive(c.client);
    assert.deepEqual(await openSessions(server, 'late-user'), [c.sessionId, d.sessionId].sort());
  });
});

describe("device slots with ws.connectionPolicy.user 'single'", () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ ws: { connectionPolicy: { user: 'single' } } });
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('keeps one connection in total whatever the device type', async () => {
    const web = await userToken(server, appKey, 'single-user', 'im_web');
    const ios = await userToken(server, appKey, 'single-user', 'im_app_ios');
    const a = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${web}` } });
    await a.next('connected');
    const b = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${ios}` } });
    const connected = await b.next('connected');
    await expectReplaced(a);
    await assertAlive(b);
    assert.deepEqual(await openSessions(server, 'single-user'), [connected.body.session_id]);
  });

  it('still lets agents hold several sockets', async () => {
    const agent = await agentLogin(server, 'single-policy-agent');
    const headers = { authorization: `Bearer ${agent.token}` };
    const a = clients.connect(`${server.wsUrl}/ws/chat`, { headers });
    const b = clients.connect(`${server.wsUrl}/ws/chat`, { headers });
    await Promise.all([a.next('connected'), b.next('connected')]);
    await assertAlive(a);
    await assertAlive(b);
  });
});
