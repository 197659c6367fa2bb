import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeClient, openSocket, passwordUser, tryConnect, validate } from './helpers/auth-fixtures.js';
import { agentLogin, api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';

describe('the admin API', () => {
  let server: TestServer;
  let appKey: string;
  const admin = () => ({ 'x-admin-key': server.adminKey });
  const adminApi = (method: string, path: string, body?: unknown) =>
    api(server, method, path, { headers: admin(), ...(body === undefined ? {} : { body }) });

  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server, 'admin test app');
  });
  after(() => server.close());

  it('refuses every admin route without the X-Admin-Key or with a wrong one (401)', async () => {
    const routes: [string, string, unknown?][] = [
      ['GET', '/api/v1/admin/connections'],
      ['GET', '/api/v1/admin/connections?principal=x'],
      ['POST', '/api/v1/admin/principals/x/kick', {}],
      ['POST', '/api/v1/admin/principals/x/revoke'],
      ['POST', '/api/v1/admin/principals/x/block'],
      ['POST', '/api/v1/admin/principals/x/unblock'],
      ['POST', '/api/v1/admin/agents', { username: 'sneaky', password: 'sneaky-password' }],
      ['POST', '/api/v1/admin/app-keys', { name: 'sneaky' }],
      ['GET', '/api/v1/admin/app-keys'],
      ['GET', '/api/v1/admin/stats'],
    ];
    for (const [method, path, body] of routes)
      for (const headers of [{}, { 'x-admin-key': 'wrong' }, { 'x-admin-key': `${server.adminKey}x` }]) {
        const res = await api(server, method, path, {
          headers: headers as Record<string, string>,
          ...(body === undefined ? {} : { body }),
        });
        assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.equal(typeof res.body.error, 'string');
        assert.equal(typeof res.body.message, 'string');
      }
    const sneaky = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'sneaky', password: 'sneaky-password' },
    });
    assert.equal(sneaky.status, 401, 'the refused agent creation created nothing');
  });

  it('creates an agent with 201 and refuses a duplicate with 409', async () => {
    const res = await adminApi('POST', '/api/v1/admin/agents', {
      username: 'alice.agent',
      password: 'alice-password',
      name: 'Alice',
    });
    assert.equal(res.status, 201);
    assert.deepEqual(res.body, { id: 'alice.agent', kind: 'agent', name: 'Alice' });
    const login = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'alice.agent', password: 'alice-password' },
    });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.kind, 'agent');

    const dup = await adminApi('POST', '/api/v1/admin/agents', { username: 'alice.agent', password: 'other-password' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error, 'CONFLICT');
    const still = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'alice.agent', password: 'alice-password' },
    });
    assert.equal(still.status, 200, 'the duplicate did not change the password');
  });

  it('refuses an agent with a short password or a bad username with 400', async () => {
    const short = await adminApi('POST', '/api/v1/admin/agents', { username: 'shorty', password: 'short' });
    assert.equal(short.status, 400);
    assert.equal(short.body.error, 'INVALID_REQUEST');
    const spaces = await adminApi('POST', '/api/v1/admin/agents', { username: 'has space', password: 'long-password' });
    assert.equal(spaces.status, 400);
  });

  it('creates app keys showing the key only once, and lists them without it', async () => {
    const created = await adminApi('POST', '/api/v1/admin/app-keys', { name: 'Shop backend' });
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.body).sort(), ['createdAt', 'id', 'key', 'name']);
    assert.equal(created.body.name, 'Shop backend');
    assert.equal(typeof created.body.key, 'string');
    const list = await adminApi('GET', '/api/v1/admin/app-keys');
    assert.equal(list.status, 200);
    const entry = list.body.appKeys.find((k: { id: string }) => k.id === created.body.id);
    assert.deepEqual(entry, { id: created.body.id, name: 'Shop backend', createdAt: created.body.createdAt });
    assert.ok(!JSON.stringify(list.body).includes(created.body.key), 'the list never shows a key');
    const token = await userToken(server, created.body.key, 'key-works');
    assert.equal((await validate(server, token)).body.valid, true);
  });

  it('lists connections, all of them or those of one principal', async () => {
    const a = await openSocket(server, '/ws', await userToken(server, appKey, 'conn-a', 'im_web'), {
      'device-id': 'dev-a',
      'client-id': 'client-a',
    });
    const b = await openSocket(server, '/ws', await userToken(server, appKey, 'conn-b'));
    const all = await adminApi('GET', '/api/v1/admin/connections');
    assert.equal(all.status, 200);
    const ids = all.body.connections.map((c: { principal: { id: string } | null }) => c.principal?.id);
    assert.ok(ids.includes('conn-a') && ids.includes('conn-b'), JSON.stringify(ids));

    const one = await adminApi('GET', '/api/v1/admin/connections?principal=conn-a');
    assert.equal(one.status, 200);
    assert.equal(one.body.connections.length, 1);
    const [conn] = one.body.connections;
    assert.deepEqual(conn.principal, { id: 'conn-a', kind: 'user', name: 'User conn-a' });
    assert.equal(conn.device_type, 'im_web');
    assert.equal(conn.device_id, 'dev-a');
    assert.equal(conn.client_id, 'client-a');
    assert.equal(conn.endpoint, '/ws');
    assert.equal(typeof conn.session_id, 'string');
    assert.equal(typeof conn.node, 'string');
    assert.equal(typeof conn.connected_at, 'number');
    assert.equal(typeof conn.expires_at, 'number');

    const none = await adminApi('GET', '/api/v1/admin/connections?principal=nobody');
    assert.deepEqual(none.body, {
      connections: [],
      nodes: [server.gatehouse.services.nodeId],
      missingNodes: [],
    });
    await closeClient(a);
    await closeClient(b);
  });

  it('kicks every socket of a principal with kicked KICKED and 4410', async () => {
    const web = await openSocket(server, '/ws', await userToken(server, appKey, 'kick-all', 'im_web'));
    const ios = await openSocket(server, '/ws', await userToken(server, appKey, 'kick-all', 'im_app_ios'));
    const res = await adminApi('POST', '/api/v1/admin/principals/kick-all/kick', {});
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { ok: true, closed: 2, missingNodes: [] }, 'says how many sockets it closed');
    for (const socket of [web, ios]) {
      assert.equal((await socket.next('kicked')).reason, 'KICKED');
      assert.deepEqual(await socket.closed, { code: 4410, reason: 'KICKED' });
    }
  });

  it('accepts a kick with Content-Type: application/json and an empty body (kicks every socket)', async () => {
    const web = await openSocket(server, '/ws', await userToken(server, appKey, 'kick-empty', 'im_web'));
    for (const rawBody of ['', '  ']) {
      const res = await api(server, 'POST', '/api/v1/admin/principals/kick-empty/kick', {
        headers: { ...admin(), 'content-type': 'application/json' },
        rawBody,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.ok, true);
    }
    assert.equal((await web.next('kicked')).reason, 'KICKED');
    const bad = await api(server, 'POST', '/api/v1/admin/principals/kick-empty/kick', {
      headers: { ...admin(), 'content-type': 'application/json' },
      rawBody: '{"deviceType":',
    });
    assert.equal(bad.status, 400, 'broken JSON is still refused');
    const poisoned = await api(server, 'POST', '/api/v1/admin/principals/kick-empty/kick', {
      headers: { ...admin(), 'content-type': 'application/json' },
      rawBody: '{"__proto__":{"deviceType":"x"}}',
    });
    assert.equal(poisoned.status, 400, 'prototype poisoning is refused as by the default parser');
  });

  it('answers 404 for an unknown principal on kick, revoke, block and unblock, and closes nothing', async () => {
    for (const action of ['kick', 'revoke', 'block', 'unblock']) {
      const res = await adminApi('POST', `/api/v1/admin/principals/nobody-here/${action}`, {});
      assert.equal(res.status, 404, action);
      assert.equal(res.body.error, 'NOT_FOUND');
    }
  });

  it('block answers the number of sockets closed; unblock closes none', async () => {
    const token = await userToken(server, appKey, 'block-count', 'im_web');
    const web = await openSocket(server, '/ws', token);
    const ios = await openSocket(server, '/ws', await userToken(server, appKey, 'block-count', 'im_app_ios'));
    const blocked = await adminApi('POST', '/api/v1/admin/principals/block-count/block');
    assert.deepEqual(blocked.body, { ok: true, closed: 2, missingNodes: [] });
    for (const socket of [web, ios]) assert.equal((await socket.closed).code, 4410);
    const unblocked = await adminApi('POST', '/api/v1/admin/principals/block-count/unblock');
    assert.deepEqual(unblocked.body, { ok: true, closed: 0, missingNodes: [] });
  });

  it('kicks only the sockets of the given device type', async () => {
    const web = await openSocket(server, '/ws', await userToken(server, appKey, 'kick-one', 'im_web'));
    const ios = await openSocket(server, '/ws', await userToken(server, appKey, 'kick-one', 'im_app_ios'));
    const res = await adminApi('POST', '/api/v1/admin/principals/kick-one/kick', { deviceType: 'im_web' });
    assert.equal(res.status, 200);
    assert.equal(res.body.closed, 1, 'only the web socket');
    assert.equal((await web.next('kicked')).reason, 'KICKED');
    assert.equal((await web.closed).code, 4410);
    assert.equal((await ios.request({ type: 'ping' })).type, 'pong', 'the other device stays connected');
    const left = await adminApi('GET', '/api/v1/admin/connections?principal=kick-one');
    assert.deepEqual(
      left.body.connections.map((c: { device_type: string }) => c.device_type),
      ['im_app_ios'],
    );
    await closeClient(ios);
  });

  it('revokes every token of a principal and closes its sockets with 4410', async () => {
    const login = await passwordUser(server, 'revoke-me');
    const appToken = await userToken(server, appKey, 'revoke-bystander');
    const second = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'revoke-me', password: 'user-password-1', device_type: 'im_app_ios' },
    });
    const socket = await openSocket(server, '/ws', login.token);
    const bystander = await openSocket(server, '/ws', appToken);

    const res = await adminApi('POST', '/api/v1/admin/principals/revoke-me/revoke');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { ok: true, closed: 1, missingNodes: [] });
    assert.equal((await socket.next('kicked')).reason, 'REVOKED');
    assert.deepEqual(await socket.closed, { code: 4410, reason: 'REVOKED' });

    for (const token of [login.token, second.body.token as string]) {
      const check = await validate(server, token);
      assert.equal(check.body.valid, false);
      assert.equal(check.body.error, 'TOKEN_REVOKED');
    }
    const handshake = await tryConnect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${login.token}` } });
    assert.equal(handshake.kind, 'rejected');
    if (handshake.kind === 'rejected') {
      assert.equal(handshake.status, 401);
      assert.equal(handshake.code, 'TOKEN_REVOKED');
    }
    const refresh = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: login.refresh_token } });
    assert.equal(refresh.status, 401, 'refresh tokens issued before the revoke are refused too');
    assert.equal(refresh.body.error, 'TOKEN_REVOKED');

    assert.equal((await bystander.request({ type: 'ping' })).type, 'pong', 'other principals are untouched');
    await closeClient(bystander);

    const fresh = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'revoke-me', password: 'user-password-1' },
    });
    assert.equal(fresh.status, 200);
    assert.equal((await validate(server, fresh.body.token)).body.valid, true, 'a new login works again');
  });

  it('acts on principals whose ids are as long as the open API allows (128 characters)', async () => {
    for (const id of ['i'.repeat(128), 'é'.repeat(128), 'a/b?c#d'.padEnd(128, '%')]) {
      const login = await api(server, 'POST', '/openapi/v1/user/login', {
        headers: { 'x-app-key': appKey },
        body: { id, nickname: 'Long', device: 'im_web' },
      });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const token = (login.body.data.token as string).slice('Bearer '.length);
      const socket = await openSocket(server, '/ws', token);
      const path = `/api/v1/admin/principals/${encodeURIComponent(id)}`;
      const listed = await adminApi('GET', `/api/v1/admin/connections?principal=${encodeURIComponent(id)}`);
      assert.equal(listed.body.connections.length, 1);
      const res = await adminApi('POST', `${path}/block`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((await socket.next('kicked')).reason, 'BLOCKED');
      assert.equal((await adminApi('POST', `${path}/unblock`)).status, 200);
      assert.equal((await adminApi('POST', `${path}/revoke`)).status, 200);
      assert.equal((await adminApi('POST', `${path}/kick`, {})).status, 200);
      assert.equal((await validate(server, token)).body.error, 'TOKEN_REVOKED');
    }
  });

  it('answers 404 when revoking, blocking or unblocking an unknown principal', async () => {
    for (const action of ['revoke', 'block', 'unblock']) {
      const res = await adminApi('POST', `/api/v1/admin/principals/no-such-principal/${action}`);
      assert.equal(res.status, 404, action);
      assert.equal(res.body.error, 'NOT_FOUND');
    }
  });

  it('blocks a principal: sockets get kicked BLOCKED and 4410, logins and handshakes are refused', async () => {
    const agent = await agentLogin(server, 'block-me');
    const socket = await openSocket(server, '/ws/chat', agent.token);
    const res = await adminApi('POST', '/api/v1/admin/principals/block-me/block');
    assert.equal(res.status, 200);
    assert.equal((await socket.next('kicked')).reason, 'BLOCKED');
    assert.deepEqual(await socket.closed, { code: 4410, reason: 'BLOCKED' });

    const login = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'block-me', password: 'correct-horse-battery' },
    });
    assert.equal(login.status, 403);
    assert.equal(login.body.error, 'FORBIDDEN');
    assert.equal(login.body.token, undefined);

    const handshake = await tryConnect(`${server.wsUrl}/ws/chat`, {
      headers: { authorization: `Bearer ${agent.token}` },
    });
    assert.equal(handshake.kind, 'rejected');
    if (handshake.kind === 'rejected') {
      assert.equal(handshake.status, 403);
      assert.equal(handshake.code, 'FORBIDDEN');
    }
    const check = await validate(server, agent.token);
    assert.equal(check.body.valid, false);
    assert.equal(check.body.error, 'TOKEN_REVOKED');
    const ticket = await api(server, 'POST', '/api/v1/ws-ticket', {
      headers: { authorization: `Bearer ${agent.token}` },
    });
    assert.equal(ticket.status, 403);

    const unblock = await adminApi('POST', '/api/v1/admin/principals/block-me/unblock');
    assert.equal(unblock.status, 200);
    const again = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'block-me', password: 'correct-horse-battery' },
    });
    assert.equal(again.status, 200);
    const back = await openSocket(server, '/ws/chat', again.body.token);
    await closeClient(back);
  });

  it('blocks an app user: the open API refuses to log it in until it is unblocked', async () => {
    await userToken(server, appKey, 'blocked-app-user');
    assert.equal((await adminApi('POST', '/api/v1/admin/principals/blocked-app-user/block')).status, 200);
    const body = { id: 'blocked-app-user', nickname: 'B', device: 'im_web' };
    const refused = await api(server, 'POST', '/openapi/v1/user/login', { headers: { 'x-app-key': appKey }, body });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 403);
    assert.equal(refused.body.data, undefined);
    assert.equal((await adminApi('POST', '/api/v1/admin/principals/blocked-app-user/unblock')).status, 200);
    const allowed = await api(server, 'POST', '/openapi/v1/user/login', { headers: { 'x-app-key': appKey }, body });
    assert.equal(allowed.status, 200);
  });
});

describe('GET /api/v1/admin/stats', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('reports stats: node, uptime, connections by kind and principals by kind', async () => {
    const agent = await agentLogin(server, 'stats-agent');
    await server.gatehouse.services.auth.createAccount({ kind: 'user', username: 'stats-user', password: 'pw-stats' });
    const socket = await openSocket(server, '/ws/chat', agent.token);
    const unauthenticated = await tryConnect(`${server.wsUrl}/`);
    assert.equal(unauthenticated.kind, 'connected');
    const res = await api(server, 'GET', '/api/v1/admin/stats', { headers: { 'x-admin-key': server.adminKey } });
    assert.equal(res.status, 200);
    assert.equal(typeof res.body.node, 'string');
    assert.equal(typeof res.body.uptimeSeconds, 'number');
    assert.equal(res.body.connections.total, 2);
    assert.equal(res.body.connections.unauthenticated, 1);
    assert.deepEqual(res.body.connections.byKind, { user: 0, agent: 1, customer: 0 });
    assert.deepEqual(Object.keys(res.body.principals).sort(), ['agent', 'customer', 'user']);
    assert.deepEqual(res.body.principals, { user: 1, agent: 1, customer: 0 });
    await closeClient(socket);
    if (unauthenticated.kind === 'connected') await closeClient(unauthenticated.client);
  });
});
