import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { passwordUser } from './helpers/auth-fixtures.js';
import { api, createAppKey, newCustomer, startServer, type TestServer, userToken } from './helpers/test-server.js';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: any;
}

const INFO = 30;
const DEBUG = 20;
const ADMIN_KEY = 'rest-log-test-admin-key-0123456789';
/** What docs/operations.md tells operators to compute: the first 8 hex digits of the key's SHA-256. */
const fingerprint = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 8);

/**
 * The REST layer's log events (issue 8 item 15), read from a captured pino stream of a real
 * server at `debug`: refused logins, the admin audit trail and per-request lines, none of
 * them carrying a whole credential.
 */
describe('REST logs', () => {
  const lines: string[] = [];
  const secrets: string[] = [ADMIN_KEY];
  let server: TestServer;
  let appKey: string;
  const admin = { 'x-admin-key': ADMIN_KEY };

  before(async () => {
    server = await startServer(
      { adminKey: ADMIN_KEY, log: { level: 'debug' }, limits: { loginAttemptsPerAccountAndIp: 3 } },
      { logStream: { write: (line: string) => void lines.push(line) } },
    );
    appKey = await createAppKey(server, 'log app');
    secrets.push(appKey);
  });
  after(() => server.close());

  const parsed = (): LogLine[] => lines.map((l) => JSON.parse(l) as LogLine);
  /** Lines are written as the request completes (onResponse may run after the reply): wait, bounded. */
  async function line(predicate: (l: LogLine) => boolean, what: string): Promise<LogLine> {
    for (let i = 0; i < 250; i++) {
      const found = parsed().find(predicate);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail(`no log line: ${what}`);
  }

  it('logs a failed, a blocked and a rate-limited REST login at info with the account, IP and code', async () => {
    secrets.push('wrong-password-of-the-log-test');
    const failed = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'nobody-here', password: 'wrong-password-of-the-log-test' },
    });
    assert.equal(failed.status, 401);
    const entry = await line((l) => l.msg === 'login refused' && l.principal === 'nobody-here', 'failed login');
    assert.equal(entry.level, INFO);
    assert.equal(entry.code, 'LOGIN_FAILED');
    assert.equal(entry.ip, '127.0.0.1');
    assert.equal(entry.route, '/api/v1/public/login');

    const user = await passwordUser(server, 'log-blocked', 'blocked-user-password-1');
    secrets.push(user.token, user.refresh_token, 'blocked-user-password-1');
    assert.equal(
      (await api(server, 'POST', '/api/v1/admin/principals/log-blocked/block', { headers: admin })).status,
      200,
    );
    const blocked = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'log-blocked', password: 'blocked-user-password-1' },
    });
    assert.equal(blocked.status, 403);
    const blockedEntry = await line((l) => l.msg === 'login refused' && l.principal === 'log-blocked', 'blocked');
    assert.equal(blockedEntry.code, 'FORBIDDEN');

    for (let i = 0; i < 4; i++)
      await api(server, 'POST', '/api/v1/public/login', {
        body: { username: 'log-limited', password: 'wrong-password-of-the-log-test' },
      });
    const limited = await line(
      (l) => l.msg === 'login refused' && l.principal === 'log-limited' && l.code === 'RATE_LIMITED',
      'rate-limited login',
    );
    assert.equal(limited.level, INFO);
  });

  it('logs an open-API login with a bad app key, and a blocked user with its app', async () => {
    const wrongKey = `gak_${'w'.repeat(32)}`;
    secrets.push(wrongKey);
    const res = await api(server, 'POST', '/openapi/v1/user/login', {
      headers: { 'x-app-key': wrongKey },
      body: { id: 'log-open', nickname: 'Open', device: 'im_web' },
    });
    assert.equal(res.status, 401);
    const entry = await line((l) => l.msg === 'open API login refused' && l.code === 'TOKEN_INVALID', 'bad key');
    assert.equal(entry.level, INFO);
    assert.equal(entry.ip, '127.0.0.1');
    assert.equal(entry.app, undefined);

    secrets.push(await userToken(server, appKey, 'log-open-blocked'));
    await api(server, 'POST', '/api/v1/admin/principals/log-open-blocked/block', { headers: admin });
    const blocked = await api(server, 'POST', '/openapi/v1/user/login', {
      headers: { 'x-app-key': appKey },
      body: { id: 'log-open-blocked', nickname: 'Open', device: 'im_web' },
    });
    assert.equal(blocked.status, 403);
    const blockedEntry = await line(
      (l) => l.msg === 'open API login refused' && l.principal === 'log-open-blocked',
      'blocked open-API user',
    );
    assert.equal(blockedEntry.code, 'FORBIDDEN');
    assert.match(blockedEntry.app, /^app_/);
  });

  it('logs a refused customer refresh with the customer, IP and code, on both routes', async () => {
    const customer = await newCustomer(server);
    const other = await newCustomer(server);
    secrets.push(customer.token, customer.refreshToken, other.token, other.refreshToken);
    // Another customer's refresh token under this customer's id.
    const res = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: other.refreshToken },
    });
    assert.equal(res.status, 401);
    const entry = await line(
      (l) => l.msg === 'customer refresh refused' && l.principal === customer.customerId,
      'customer refresh',
    );
    assert.equal(entry.level, INFO);
    assert.equal(entry.code, res.body.error);
    assert.equal(entry.ip, '127.0.0.1');
    await api(server, 'POST', '/api/v1/customers/token', { body: { customerId: other.customerId } });
    const missing = await line(
      (l) => l.msg === 'customer refresh refused' && l.principal === other.customerId,
      'customer refresh without a token',
    );
    assert.equal(missing.code, 'MISSING_TOKEN');
    assert.equal(missing.route, '/api/v1/customers/token');
  });

  it('logs a refresh answered in the reuse grace period with the principal, on both refresh routes', async () => {
    const customer = await newCustomer(server);
    const rotated = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    const again = await api(server, 'POST', '/api/v1/customers/token', {
      body: { customerId: customer.customerId, refreshToken: customer.refreshToken },
    });
    assert.equal(again.status, 200);
    secrets.push(customer.token, customer.refreshToken, rotated.body.refreshToken, again.body.refreshToken);
    const entry = await line(
      (l) => l.msg === 'refresh answered in the reuse grace period' && l.principal === customer.customerId,
      'customer refresh in the grace period',
    );
    assert.equal(entry.level, INFO);
    assert.equal(entry.route, '/api/v1/customers/token');
    assert.equal(entry.ip, '127.0.0.1');

    const user = await passwordUser(server, 'grace-log-user');
    await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: user.refresh_token } });
    const graced = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: user.refresh_token } });
    assert.equal(graced.status, 200);
    secrets.push(user.token, user.refresh_token, graced.body.body.refresh_token);
    const userEntry = await line(
      (l) => l.msg === 'refresh answered in the reuse grace period' && l.principal === 'grace-log-user',
      'user refresh in the grace period',
    );
    assert.equal(userEntry.route, '/api/refresh-token');
  });

  it('writes an audit line for every admin action with the key fingerprint, action, target and outcome', async () => {
    secrets.push('agent-password-of-the-log-test');
    const agent = await api(server, 'POST', '/api/v1/admin/agents', {
      headers: admin,
      body: { username: 'log-agent', password: 'agent-password-of-the-log-test' },
    });
    assert.equal(agent.status, 201);
    const key = await api(server, 'POST', '/api/v1/admin/app-keys', { headers: admin, body: { name: 'audited' } });
    secrets.push(key.body.key);
    secrets.push(await userToken(server, appKey, 'log-target'));
    for (const action of ['kick', 'revoke', 'block', 'unblock'])
      assert.equal(
        (await api(server, 'POST', `/api/v1/admin/principals/log-target/${action}`, { headers: admin })).status,
        200,
      );
    await api(server, 'GET', '/api/v1/admin/connections?principal=log-target', { headers: admin });
    await api(server, 'GET', '/api/v1/admin/app-keys', { headers: admin });
    const missing = await api(server, 'POST', '/api/v1/admin/principals/no-such-principal/kick', { headers: admin });
    assert.equal(missing.status, 404);

    const audit = (action: string, target?: string) =>
      line(
        (l) => l.msg === 'admin action' && l.action === action && (target === undefined || l.target === target),
        `audit ${action}`,
      );
    const created = await audit('agent.create');
    assert.equal(created.level, INFO);
    assert.equal(created.key, fingerprint(ADMIN_KEY));
    assert.equal(created.target, agent.body.id);
    assert.equal(created.outcome, 'ok');
    assert.equal(created.status, 201);
    assert.equal(created.ip, '127.0.0.1');
    const appKeyLine = await audit('app-key.create', key.body.id);
    assert.equal(appKeyLine.name, 'audited');
    for (const action of ['kick', 'revoke', 'block', 'unblock']) {
      const entry = await audit(`principal.${action}`, 'log-target');
      assert.equal(entry.outcome, 'ok');
      assert.equal(entry.key, fingerprint(ADMIN_KEY));
      assert.equal(typeof entry.closed, 'number');
    }
    assert.equal((await audit('connections.list', 'log-target')).outcome, 'ok');
    assert.equal((await audit('app-keys.list')).status, 200);
    const failed = await audit('principal.kick', 'no-such-principal');
    assert.equal(failed.outcome, 'failed');
    assert.equal(failed.status, 404);
    assert.equal(failed.code, 'NOT_FOUND');
  });

  it('audits an action whose caller hung up before the answer (the action happened)', async () => {
    secrets.push(await userToken(server, appKey, 'log-hangup'));
    const { port } = new URL(server.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    // The whole request, then the connection is reset at once: the server still acts on it.
    socket.on('error', () => {});
    socket.write(
      `POST /api/v1/admin/principals/log-hangup/block HTTP/1.1\r\nHost: x\r\nX-Admin-Key: ${ADMIN_KEY}\r\nContent-Length: 0\r\n\r\n`,
    );
    socket.resetAndDestroy();
    const entry = await line((l) => l.msg === 'admin action' && l.target === 'log-hangup', 'audit of a hung-up call');
    assert.equal(entry.action, 'principal.block');
    // The address is the caller's, though its socket is gone by the time the line is written.
    assert.equal(entry.ip, '127.0.0.1');
    assert.equal((await server.gatehouse.services.store.getPrincipal('log-hangup'))?.blocked, true);
  });

  it('logs an admin request with a wrong key as refused, with the fingerprint of the key presented', async () => {
    const wrong = 'not-the-admin-key-but-a-guess-0123';
    secrets.push(wrong);
    const res = await api(server, 'POST', '/api/v1/admin/principals/log-target/kick', {
      headers: { 'x-admin-key': wrong },
    });
    assert.equal(res.status, 401);
    const entry = await line((l) => l.msg === 'admin request refused' && l.key === fingerprint(wrong), 'refused');
    assert.equal(entry.level, INFO);
    assert.equal(entry.action, 'principal.kick');
    assert.equal(entry.target, 'log-target');
    assert.equal(entry.outcome, 'refused');
    assert.equal(entry.code, 'TOKEN_INVALID');
    await api(server, 'GET', '/api/v1/admin/stats');
    const none = await line((l) => l.msg === 'admin request refused' && l.action === 'stats.read', 'no key');
    assert.equal(none.key, null);
  });

  it('audits group management done with the admin key, not with an app key', async () => {
    const members = ['log-target'];
    const byAdmin = await api(server, 'POST', '/api/v1/conversations', {
      headers: admin,
      body: { kind: 'group', name: 'audited group', members },
    });
    assert.equal(byAdmin.status, 201);
    const entry = await line((l) => l.msg === 'admin action' && l.action === 'group.create', 'group audit');
    assert.equal(entry.target, byAdmin.body.id);
    assert.equal(entry.key, fingerprint(ADMIN_KEY));
    const byApp = await api(server, 'POST', '/api/v1/conversations', {
      headers: { 'x-app-key': appKey },
      body: { kind: 'group', name: 'app group', members },
    });
    assert.equal(byApp.status, 201);
    await line((l) => l.msg === 'request' && l.status === 201 && l.headers?.['x-app-key'] !== undefined, 'request');
    assert.ok(!parsed().some((l) => l.msg === 'admin action' && l.target === byApp.body.id));
  });

  it('logs each request at debug with method, route pattern, status, duration and IP, credentials shortened', async () => {
    const user = await passwordUser(server, 'log-debug', 'debug-user-password-1');
    secrets.push(user.token, user.refresh_token, 'debug-user-password-1');
    const res = await api(server, 'GET', `/api/v1/public/validate-token?device=x&token=${user.token}&z=1`, {
      headers: {
        authorization: `Bearer ${user.token}`,
        cookie: `session=${user.refresh_token}`,
        token: user.token,
        'x-app-key': appKey,
        'x-admin-key': ADMIN_KEY,
        'sec-websocket-protocol': `gatehouse.v1, bearer.${user.token}`,
      },
    });
    assert.equal(res.body.valid, true);
    const entry = await line((l) => l.msg === 'request' && l.route === '/api/v1/public/validate-token', 'request');
    assert.equal(entry.level, DEBUG);
    assert.equal(entry.method, 'GET');
    assert.equal(entry.status, 200);
    assert.equal(entry.ip, '127.0.0.1');
    assert.equal(typeof entry.durationMs, 'number');
    assert.equal(
      entry.url,
      `/api/v1/public/validate-token?device=x&token=${user.token.slice(0, 8)}…${user.token.slice(-4)}&z=1`,
    );
    for (const name of ['authorization', 'cookie', 'token', 'x-app-key', 'x-admin-key', 'sec-websocket-protocol'])
      assert.match(entry.headers[name], /^(\*\*\*|[^…]{0,8}…[^…]{0,4})$/u, name);

    // A route with a parameter is named by its pattern; the URL keeps the id.
    await api(server, 'POST', '/api/v1/admin/principals/log-debug/unblock', { headers: admin });
    const admin1 = await line(
      (l) => l.msg === 'request' && l.url === '/api/v1/admin/principals/log-debug/unblock',
      'admin request',
    );
    assert.equal(admin1.route, '/api/v1/admin/principals/:id/unblock');
  });

  it('shortens credentials in every spelling of the query a parser reads, also on unknown routes', async () => {
    const customer = await newCustomer(server);
    secrets.push(customer.token, customer.refreshToken);
    const t = customer.token;
    const ticket = (await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${t}` } })).body
      .ticket as string;
    secrets.push(ticket);
    const spellings = [
      `/api/v1/public/validate-token?%74oken=${t}`,
      `/api/v1/public/validate-token?TOKEN=${t}`,
      `/api/v1/public/validate-token?access_token=${t}&token=${t}`,
      `/no-such-route?ticket=${ticket}&refresh_token=${customer.refreshToken}`,
      `/no-such-route?password=${'p'.repeat(20)}secret&pwd=${'q'.repeat(20)}secret`,
    ];
    secrets.push(`${'p'.repeat(20)}secret`, `${'q'.repeat(20)}secret`);
    for (const path of spellings) await api(server, 'GET', path);
    await line((l) => l.msg === 'request' && l.url?.startsWith('/no-such-route?password='), 'last spelling');
    const unknown = parsed().find((l) => l.msg === 'request' && l.url?.startsWith('/no-such-route?ticket='));
    assert.equal(unknown?.status, 404);
    assert.equal(unknown?.route, null);
  });

  it('never writes a whole token, password, admin key, app key or refresh token into any line', () => {
    assert.ok(lines.length > 0);
    assert.ok(secrets.length >= 20);
    for (const secret of secrets)
      for (const l of lines)
        assert.ok(!l.includes(secret), `a log line carries a secret (${secret.slice(0, 8)}…): ${l.slice(0, 300)}`);
  });
});
