import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ClientOptions, ClientSet } from './helpers/clients.js';
import { record } from './helpers/recorder.js';
import { admin, api, createAppKey, TestGatehouse, until, userToken } from './helpers/server.js';

const quick = { initial: 50, max: 200, spread: 50, long: 200 };

describe('GatehouseClient terminal closes and slow-down', { timeout: 60_000 }, () => {
  let server: TestGatehouse;
  let appKey: string;
  const clients = new ClientSet();
  const user = (id: string, extra: Partial<ClientOptions> = {}) =>
    clients.user(server, appKey, id, { backoff: quick, ...extra });

  before(async () => {
    server = await TestGatehouse.start();
    appKey = await createAppKey(server);
  });
  after(async () => {
    clients.closeAll();
    await server.close();
  });

  it('goes replaced (4409) when a second device of the same type connects, and does not fight it', async () => {
    const first = user('s-twice', { deviceType: 'im_web' });
    const second = user('s-twice', { deviceType: 'im_web' });
    const firstRec = record(first);
    await first.connect();
    await userToken(server, appKey, 's-peer');
    await second.connect();
    await until(() => first.status === 'replaced', 'replaced');
    // The newer device keeps working, and the older one never retried.
    const conns = await api(server, 'GET', '/api/v1/admin/connections?principal=s-twice', { headers: admin(server) });
    assert.equal(conns.body.connections.length, 1, 'one socket: the older device did not come back');
    await second.send({ to: 's-peer' }, 'from the newer device');
    assert.equal(second.status, 'connected');
    assert.equal(firstRec.reconnecting.length, 0);
    assert.deepEqual(firstRec.statuses, ['connecting', 'connected', 'replaced']);
    await assert.rejects(first.send({ to: 's-peer' }, 'x'), { code: 'CLOSED' });
  });

  for (const [action, status] of [
    ['revoke', 'revoked'],
    ['kick', 'kicked'],
    ['block', 'blocked'],
  ] as const) {
    it(`goes ${status} (4410) when an admin does ${action}, with no retry`, async () => {
      const c = user(`s-${action}`);
      const rec = record(c);
      const terminal: unknown[] = [];
      c.on(status, (info) => terminal.push(info));
      await c.connect();
      const res = await api(server, 'POST', `/api/v1/admin/principals/s-${action}/${action}`, {
        headers: admin(server),
        body: {},
      });
      assert.ok(res.status < 300, JSON.stringify(res.body));
      await until(() => c.status === status, status);
      assert.deepEqual(terminal, [{ code: 4410, reason: status.toUpperCase() }]);
      assert.equal(rec.reconnecting.length, 0);
    });
  }

  it('goes forbidden (4403) when a user token is used on the agent/customer endpoint', async () => {
    const c = user('s-wrong-endpoint', { url: `${server.wsUrl}/ws/chat` });
    const rec = record(c);
    await assert.rejects(c.connect(), { code: 'CLOSED' });
    assert.equal(c.status, 'forbidden');
    assert.equal(rec.reconnecting.length, 0);
  });

  it('waits at least Retry-After after a 429 handshake refusal', async () => {
    const limited = await TestGatehouse.start({ limits: { handshakesPerSecondPerIp: 1 } });
    try {
      const key = await createAppKey(limited);
      const make = (id: string) => clients.user(limited, key, id, { backoff: quick });
      const a = make('s-rate-a');
      const b = make('s-rate-b');
      const bRec = record(b);
      await a.connect();
      const bConnected = b.connect();
      await until(() => bRec.reconnecting.length > 0, 'b refused');
      const refused = bRec.reconnecting[0];
      assert.equal(refused?.code, 4429);
      assert.equal(refused?.reason, 'RATE_LIMITED');
      assert.ok((refused?.delay ?? 0) >= 1000, `delay ${refused?.delay} honours Retry-After (≥ 1 s)`);
      await bConnected;
      a.close();
      b.close();
    } finally {
      await limited.close();
    }
  });
});
