import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { agentLogin, api, startServer, type TestServer } from './helpers/test-server.js';
import type { TestClient } from './helpers/ws-client.js';
import { assertAlive, Clients, within } from './helpers/ws-expect.js';

const MAX_FRAME_BYTES = 1024;

/** A hello frame of exactly `bytes` bytes of JSON. */
function helloOfSize(bytes: number, id: string): string {
  const empty = JSON.stringify({ type: 'hello', id, pad: '' });
  return JSON.stringify({ type: 'hello', id, pad: 'x'.repeat(bytes - empty.length) });
}

describe('frame size limit (ws.maxFrameBytes)', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ ws: { maxFrameBytes: MAX_FRAME_BYTES } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function anonymous(): Promise<TestClient> {
    const client = clients.connect(`${server.wsUrl}/`);
    await client.next('connected');
    return client;
  }

  it('accepts a frame of exactly the limit', async () => {
    const client = await anonymous();
    const frame = helloOfSize(MAX_FRAME_BYTES, 'edge');
    assert.equal(Buffer.byteLength(frame), MAX_FRAME_BYTES);
    client.send(frame);
    assert.equal((await client.next((f) => f.id === 'edge')).type, 'hello');
  });

  it('answers a frame over the limit with PAYLOAD_TOO_LARGE and closes with 4413', async () => {
    const client = await anonymous();
    client.send(helloOfSize(MAX_FRAME_BYTES + 1, 'over'));
    const error = await client.next('error');
    assert.equal(error.code, 413);
    assert.equal(error.error, 'PAYLOAD_TOO_LARGE');
    assert.deepEqual(await within(client.closed, 'oversized frame'), { code: 4413, reason: 'PAYLOAD_TOO_LARGE' });
  });

  it('counts bytes, not characters', async () => {
    const client = await anonymous();
    // 600 three-byte characters: under the limit in characters, over it in UTF-8 bytes.
    client.send(JSON.stringify({ type: 'hello', pad: '€'.repeat(600) }));
    assert.equal((await client.next('error')).error, 'PAYLOAD_TOO_LARGE');
    assert.equal((await within(client.closed, 'oversized frame')).code, 4413);
  });

  // SPEC §5 gives 4413 for any frame over the limit, but ws reads at most twice the limit (its
  // maxPayload) and closes anything larger itself with 1009 before the gateway sees it; that
  // trade-off is written down in docs/protocol.md. A design question, so left as a todo.
  it.todo('closes a frame over twice ws.maxFrameBytes with 4413 too, as SPEC §5 says');

  it('drops a frame far over the limit and stays up for everyone else', async () => {
    const bystander = await anonymous();
    const client = await anonymous();
    client.send(helloOfSize(MAX_FRAME_BYTES * 10, 'huge'));
    // Which close code it gets is the todo above; here: it is closed and nothing else suffers.
    await within(client.closed, 'huge frame');
    assert.ok(!client.frames.some((f) => f.type === 'hello'), 'the frame was not handled');
    await assertAlive(bystander);
  });
});

describe('message rate limit (limits.messagesPerSecond)', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ limits: { messagesPerSecond: 10 } });
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  async function agentSocket(username: string): Promise<TestClient> {
    const agent = await agentLogin(server, username);
    const client = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    await client.next('connected');
    return client;
  }

  it('answers frames over the rate with RATE_LIMITED error frames, then closes a flood with 4429', async () => {
    const client = await agentSocket('flood-agent');
    for (let i = 0; i < 200; i++) client.send({ type: 'ping', id: i });
    assert.deepEqual(await within(client.closed, 'flood'), { code: 4429, reason: 'RATE_LIMITED' });
    const pongs = client.frames.filter((f) => f.type === 'pong');
    const limited = client.frames.filter((f) => f.type === 'error');
    assert.deepEqual(
      pongs.map((f) => f.id),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'the clock stood still: one second worth of frames',
    );
    assert.ok(limited.length > 0);
    for (const error of limited) {
      assert.equal(error.code, 429);
      assert.equal(error.error, 'RATE_LIMITED');
      assert.equal(error.body, null);
    }
  });

  it('refuses a frame over the rate without closing, and refills as time passes', async () => {
    const client = await agentSocket('steady-agent');
    for (let i = 0; i < 10; i++) client.send({ type: 'ping', id: `a${i}` });
    client.send({ type: 'ping', id: 'one-too-many' });
    const error = await client.next('error');
    assert.equal(error.error, 'RATE_LIMITED');
    assert.equal(error.code, 429);
    assert.equal(client.frames.filter((f) => f.type === 'pong').length, 10);
    assert.ok(!client.frames.some((f) => f.id === 'one-too-many'));
    server.clock.advance(1_000);
    const pong = await client.request({ type: 'ping', id: 'after-a-second' });
    assert.equal(pong.type, 'pong');
  });
});

describe('1,000 unauthenticated sockets that never speak', () => {
  const SOCKETS = 1000;
  const BATCH = 100;
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await clients.closeAll();
    await server.close();
  });

  it('all get connected, the server stays responsive, and the auth timeout closes them all with 4408', async () => {
    const idle: TestClient[] = [];
    for (let opened = 0; opened < SOCKETS; opened += BATCH) {
      const batch = Array.from({ length: BATCH }, () => clients.connect(`${server.wsUrl}/`));
      const frames = await Promise.all(batch.map((c) => c.next('connected', 30_000)));
      for (const frame of frames)
        assert.equal(frame.body.message, 'Connected successfully. Please login or provide token.');
      idle.push(...batch);
    }
    assert.equal(new Set(idle.map((c) => c.ws)).size, SOCKETS);

    // Meanwhile REST and an authenticated connection work.
    const health = await api(server, 'GET', '/healthz');
    assert.equal(health.status, 200);
    const agent = await agentLogin(server, 'crowd-agent');
    const authed = clients.connect(`${server.wsUrl}/ws/chat`, { headers: { authorization: `Bearer ${agent.token}` } });
    assert.equal((await authed.next('connected')).body.user.id, 'crowd-agent');
    await assertAlive(authed);
    assert.ok(idle.every((c) => c.ws.readyState === c.ws.OPEN));

    server.clock.advance(10_000);
    const closes = await within(Promise.all(idle.map((c) => c.closed)), 'every idle socket closed', 30_000);
    assert.ok(closes.every((c) => c.code === 4408 && c.reason === 'AUTH_TIMEOUT'));
    await assertAlive(authed);
    assert.equal((await api(server, 'GET', '/healthz')).status, 200);
    const connections = await api(server, 'GET', '/api/v1/admin/connections', {
      headers: { 'x-admin-key': server.adminKey },
    });
    assert.equal(connections.body.connections.length, 1);
    // The unauthenticated count (which limits.maxUnauthenticated is checked against) goes back
    // down as the server sees the sockets go.
    let stats: any;
    for (let i = 0; i < 250; i++) {
      stats = (await api(server, 'GET', '/api/v1/admin/stats', { headers: { 'x-admin-key': server.adminKey } })).body;
      if (stats.connections.total === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(stats.connections, { total: 1, unauthenticated: 0, byKind: { user: 0, agent: 1, customer: 0 } });
  });
});
