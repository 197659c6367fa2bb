import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ms } from '../src/config.js';
import { connectWhenAdmitted } from './helpers/auth-fixtures.js';
import { Clients, createGroup, imUsers, nextFrames, sendOk } from './helpers/messaging.js';
import { rawWebSocket } from './helpers/raw-websocket.js';
import { api, startServer, type TestServer } from './helpers/test-server.js';
import { type Frame, TestClient, WAIT_MS } from './helpers/ws-client.js';

const MAX_BUFFERED = 65_536;
const TEXT_BYTES = 60_000;
/** Enough to fill any loopback kernel buffers many times over (24 MB); the test stops much earlier. */
const MAX_MESSAGES = 400;

/** A small send buffer and large frames, so that a client that stops reading fills it fast. */
const startBackpressureServer = (limits: Record<string, number> = {}) =>
  startServer({
    ws: { maxBufferedBytes: MAX_BUFFERED },
    messages: { maxTextBytes: TEXT_BYTES },
    limits: { messagesPerSecond: 100_000, ...limits },
  });

describe('a client that stops reading', () => {
  let server: TestServer;
  const clients = new Clients();

  before(async () => {
    server = await startBackpressureServer();
  });
  after(async () => {
    await clients.closeAll();
    await server.close();
  });

  const liveConnections = async (principal: string) => {
    const res = await api(server, 'GET', `/api/v1/admin/connections?principal=${principal}`, {
      headers: { 'x-admin-key': server.adminKey },
    });
    assert.equal(res.status, 200);
    return res.body.connections.length as number;
  };

  it('is cut off while a healthy reader of the same conversation receives every message', async () => {
    const { tokens } = await imUsers(server, ['sender', 'healthy', 'stalled']);
    const groupId = await createGroup(server, ['sender', 'healthy', 'stalled'], 'big files');
    const sender = await clients.device(server, '/ws', tokens.sender as string);
    const healthy = await clients.device(server, '/ws', tokens.healthy as string);
    // Authenticated, replay done, and from then on never reads another byte.
    const stalled = await rawWebSocket(
      server.url,
      '/ws',
      { Authorization: `Bearer ${tokens.stalled}` },
      'offline_messages_complete',
    );
    const ended = new Promise<void>((resolve) => stalled.socket.once('close', () => resolve()));
    assert.equal(await liveConnections('stalled'), 1);

    const text = 'x'.repeat(TEXT_BYTES);
    let sent = 0;
    let cutOff = false;
    while (sent < MAX_MESSAGES) {
      const ack = await sendOk(sender.client, { conversation_id: groupId, text });
      sent++;
      assert.equal(ack.seq, sent);
      if ((await liveConnections('stalled')) === 0) {
        cutOff = true;
        break;
      }
    }
    assert.ok(cutOff, `the stalled socket was still open after ${sent} messages of ${TEXT_BYTES} bytes`);
    // A few more after the cut: the healthy reader keeps receiving.
    for (let i = 0; i < 3; i++) await sendOk(sender.client, { conversation_id: groupId, text: `after ${i}` });
    sent += 3;

    for (let seq = 1; seq <= sent; seq++) {
      const event = await healthy.client.next('message');
      assert.equal(event.message.seq, seq);
    }
    assert.equal(await liveConnections('healthy'), 1);
    assert.equal(healthy.client.ws.readyState, healthy.client.ws.OPEN);

    // The stalled client's TCP connection has ended: once it reads again it sees the end.
    stalled.socket.resume();
    await Promise.race([
      ended,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the stalled TCP connection did not end')), WAIT_MS).unref(),
      ),
    ]);
    // The healthy reader never noticed.
    assert.equal(healthy.client.ws.readyState, healthy.client.ws.OPEN);
  });

  it('does not cut off a reading device whose offline backlog is many times the buffer limit', async () => {
    const { tokens } = await imUsers(server, ['busy-sender', 'returning']);
    const sender = await clients.device(server, '/ws', tokens['busy-sender'] as string);
    // 12 MB: far more than the limit plus what the kernel buffers take at once (about 4 MB here).
    const backlog = 200;
    for (let i = 1; i <= backlog; i++)
      await sendOk(sender.client, { to: 'returning', text: `${i}:${'y'.repeat(TEXT_BYTES - 10)}` });

    const returning = await clients.device(server, '/ws', tokens.returning as string);
    assert.equal(returning.complete.count, backlog);
    assert.deepEqual(
      returning.offline.map((f) => f.message.seq),
      Array.from({ length: backlog }, (_, i) => i + 1),
    );
    const pong = await returning.client.request({ type: 'ping' });
    assert.equal(pong.type, 'pong');
    assert.equal(await liveConnections('returning'), 1);
  });

  it('delivers messages sent during a long replay exactly once, after the replayed ones, in seq order', async () => {
    const { tokens } = await imUsers(server, ['chatty', 'catching-up']);
    const sender = await clients.device(server, '/ws', tokens.chatty as string);
    const backlog = 100;
    for (let i = 1; i <= backlog; i++) await sendOk(sender.client, { to: 'catching-up', text: 'w'.repeat(TEXT_BYTES) });

    // The replay of 6 MB goes out in many steps; meanwhile the sender keeps writing.
    const live = 50;
    const receiver = clients.track(
      TestClient.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${tokens['catching-up']}` } }),
    );
    // Every frame in the order it arrived, whatever the test waits for.
    const arrivals: Frame[] = [];
    receiver.ws.on('message', (data) => arrivals.push(JSON.parse(data.toString())));
    await receiver.next('connected');
    const acks = Array.from({ length: live }, (_, i) =>
      sendOk(sender.client, { to: 'catching-up', text: `live ${i}` }),
    );
    const complete = await receiver.next('offline_messages_complete');
    assert.ok(complete.count >= backlog);
    await Promise.all(acks);
    await nextFrames(receiver, 'message', backlog + live - complete.count);

    const types = arrivals.map((f) => f.type);
    const at = types.indexOf('offline_messages_complete');
    assert.deepEqual(
      types,
      [
        'connected',
        ...Array(complete.count).fill('offline_message'),
        'offline_messages_complete',
        ...Array(backlog + live - complete.count).fill('message'),
      ],
      'the live messages wait until the replay is complete',
    );
    assert.deepEqual(
      arrivals.filter((_, i) => i !== 0 && i !== at).map((f) => f.message.seq),
      Array.from({ length: backlog + live }, (_, i) => i + 1),
      'each message once, in seq order',
    );
  });

  it('drops a device that stops reading in the middle of its offline replay at the heartbeat timeout', async () => {
    const { tokens } = await imUsers(server, ['backlog-sender', 'vanishing']);
    const sender = await clients.device(server, '/ws', tokens['backlog-sender'] as string);
    for (let i = 1; i <= 200; i++) await sendOk(sender.client, { to: 'vanishing', text: 'z'.repeat(TEXT_BYTES) });

    // Upgrades, then reads nothing: its 12 MB replay stalls in the kernel buffers.
    const stalled = await rawWebSocket(server.url, '/ws', { Authorization: `Bearer ${tokens.vanishing}` });
    const ended = new Promise<void>((resolve) => stalled.socket.once('close', () => resolve()));
    assert.equal(await liveConnections('vanishing'), 1);

    const { config } = server.gatehouse.services;
    server.clock.advance(ms(config, 'ws.heartbeatInterval'));
    // The sender answers (any frame counts as alive); the stalled device cannot.
    assert.equal((await sender.client.request({ type: 'ping' })).type, 'pong');
    server.clock.advance(ms(config, 'ws.heartbeatTimeout'));
    assert.equal(await liveConnections('vanishing'), 0);
    stalled.socket.resume();
    await Promise.race([
      ended,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the stalled TCP connection did not end')), WAIT_MS).unref(),
      ),
    ]);
    // The sender is still connected.
    assert.equal((await sender.client.request({ type: 'ping' })).type, 'pong');
  });
});

describe('a client that stops reading during its offline replay', () => {
  let server: TestServer;
  const clients = new Clients();
  before(async () => {
    server = await startBackpressureServer({ maxHandshakesInProgress: 1 });
  });
  after(async () => {
    await clients.closeAll();
    await server.close();
  });

  it('holds no handshake place while the server waits for it to read (limits.maxHandshakesInProgress)', async () => {
    const { tokens } = await imUsers(server, ['slow-sender', 'slow-reader', 'next-in-line']);
    const sender = await clients.device(server, '/ws', tokens['slow-sender'] as string);
    for (let i = 1; i <= 200; i++) await sendOk(sender.client, { to: 'slow-reader', text: 'q'.repeat(TEXT_BYTES) });

    // Greeted, then reads nothing: its 12 MB replay waits on the kernel buffers.
    const stalled = await rawWebSocket(
      server.url,
      '/ws',
      { Authorization: `Bearer ${tokens['slow-reader']}` },
      '"connected"',
    );
    // The only place is free again once the server waits for the client (503 SERVER_BUSY before that).
    const next = await connectWhenAdmitted(server, tokens['next-in-line'] as string);
    assert.equal(next.frame.body.user.id, 'next-in-line');
    next.client.close();
    stalled.socket.destroy();
  });
});
