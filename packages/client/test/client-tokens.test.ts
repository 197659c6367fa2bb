import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ClientOptions, ClientSet } from './helpers/clients.js';
import { record } from './helpers/recorder.js';
import { createAppKey, TestGatehouse, until, userToken } from './helpers/server.js';

const quick = { initial: 50, max: 200, spread: 50, long: 200 };

describe('GatehouseClient tokens', { timeout: 60_000 }, () => {
  let server: TestGatehouse;
  let appKey: string;
  const clients = new ClientSet();
  const user = (id: string, calls: { n: number }, extra: Partial<ClientOptions> = {}) =>
    clients.user(server, appKey, id, {
      getToken: () => {
        calls.n++;
        return userToken(server, appKey, id);
      },
      backoff: quick,
      ...extra,
    });

  before(async () => {
    // Short lifetimes through config; the server's clock is a ManualClock the test moves (in one
    // jump, so the server's heartbeat is set beyond it: a pong cannot arrive in the middle of a jump).
    server = await TestGatehouse.start({
      tokens: { ttl: { user: '2m' }, expiringNotice: '60s' },
      ws: { heartbeatInterval: '1h' },
    });
    appKey = await createAppKey(server);
  });
  after(async () => {
    clients.closeAll();
    await server.close();
  });

  it('refreshes in-band on token_expiring and keeps the same socket past the old expiry', async () => {
    const calls = { n: 0 };
    const c = user('t-refresh', calls);
    const rec = record(c);
    await c.connect();
    const sessionId = c.sessionId;
    server.clock.advance(61_000);
    await until(() => rec.refreshed === 1, 'tokenRefreshed');
    assert.equal(calls.n, 2, 'one getToken at start, one for the refresh');
    // Past the first token's expiry: the socket lives on.
    server.clock.advance(70_000);
    const ack = await c.send({ to: 't-peer-refresh' }, 'still here').catch((e) => e);
    assert.equal(ack.code, 'NOT_FOUND', 'the socket still answers (the peer does not exist)');
    assert.equal(c.status, 'connected');
    assert.equal(c.sessionId, sessionId, 'same socket');
    assert.equal(rec.connected, 1);
    assert.equal(rec.reconnecting.length, 0);
    assert.ok(rec.events.some((e) => e.type === 'token_expiring'));
  });

  it('calls getToken once when its token expired while the server was down, then connects', async () => {
    const calls = { n: 0 };
    const c = user('t-expired', calls);
    const rec = record(c);
    await c.connect();
    assert.equal(calls.n, 1);
    await server.stop();
    await until(() => rec.reconnecting.length >= 2, 'retrying while down');
    server.clock.advance(3 * 60_000);
    await server.start();
    await until(() => c.status === 'connected', 'connected again');
    assert.equal(calls.n, 2, 'exactly one more getToken');
    assert.ok(rec.reconnecting.some((r) => r.code === 4401 && r.reason === 'TOKEN_EXPIRED'));
    assert.equal(rec.statuses.at(-1), 'connected');
  });

  it('stops (disconnected, NO_TOKEN) when a fixed token is refused and there is no getToken', async () => {
    const token = await userToken(server, appKey, 't-fixed');
    server.clock.advance(3 * 60_000);
    const c = clients.make({ url: `${server.wsUrl}/ws`, token, backoff: quick });
    const rec = record(c);
    await assert.rejects(c.connect(), { code: 'CLOSED' });
    assert.equal(c.status, 'disconnected');
    assert.ok(rec.errors.some((e) => e.code === 'NO_TOKEN'));
    assert.ok(rec.reconnecting.length <= 1);
  });
});
