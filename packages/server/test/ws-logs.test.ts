import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Gatehouse } from '../src/app.js';
import { ManualClock } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { agentLogin, createAppKey, type TestServer, userToken } from './helpers/test-server.js';
import { Clients, createPasswordUser, expectHttpRejection, within } from './helpers/ws-expect.js';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: any;
}

const INFO = 30;
const DEBUG = 20;

/** A real server logging at debug level into `lines` (a captured pino stream). */
async function startLoggedServer(lines: string[]): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-ws-logs-'));
  const clock = new ManualClock(Date.now());
  const config = loadConfig({
    overrides: {
      server: { host: '127.0.0.1', port: 0 },
      dataDir,
      adminKey: 'ws-log-test-admin-key-0123456789',
      log: { level: 'debug' },
      limits: { handshakesPerSecondPerIp: 100_000, loginAttemptsPerIp: 1000, customerTokensPerMinutePerIp: 10_000 },
    },
  });
  const stream = { write: (line: string) => void lines.push(line) };
  const gatehouse = await Gatehouse.create({ config, clock, logger: createLogger('debug', stream) });
  const { port } = await gatehouse.listen();
  return {
    gatehouse,
    clock,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    adminKey: config.adminKey,
    dataDir,
    async close() {
      await gatehouse.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

describe('gateway logs', () => {
  const lines: string[] = [];
  const secrets: string[] = [];
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startLoggedServer(lines);
    appKey = await createAppKey(server);
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  const parsed = (): LogLine[] => lines.map((l) => JSON.parse(l) as LogLine);

  /** Waits (bounded) for a log line; the server writes it as it happens, not on our schedule. */
  async function line(predicate: (l: LogLine) => boolean, what: string): Promise<LogLine> {
    for (let i = 0; i < 250; i++) {
      const found = parsed().find(predicate);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail(`no log line: ${what}`);
  }

  it('logs a handshake refusal at info with code, endpoint and IP, never the token', async () => {
    const token = await userToken(server, appKey, 'log-refused');
    const tampered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
    secrets.push(token, tampered);
    await expectHttpRejection(
      clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${tampered}` } }),
      401,
      'TOKEN_INVALID',
    );
    const refused = await line((l) => l.msg === 'handshake refused' && l.code === 'TOKEN_INVALID', 'TOKEN_INVALID');
    assert.equal(refused.level, INFO);
    assert.equal(refused.endpoint, '/ws');
    assert.equal(refused.ip, '127.0.0.1');
  });

  it('names the principal when the credential was good but a policy refused it', async () => {
    const agent = await agentLogin(server, 'log-wrong-endpoint');
    secrets.push(agent.token);
    await expectHttpRejection(clients.connect(`${server.wsUrl}/ws?token=${agent.token}`), 403, 'FORBIDDEN');
    const refused = await line((l) => l.msg === 'handshake refused' && l.code === 'FORBIDDEN', 'FORBIDDEN');
    assert.equal(refused.principal, 'log-wrong-endpoint');
    assert.equal(refused.level, INFO);
  });

  it('logs a bad token on / at info, with the query token nowhere', async () => {
    const token = await userToken(server, appKey, 'log-root');
    const revoked = `${token}x`;
    secrets.push(token, revoked);
    const client = clients.connect(`${server.wsUrl}/?token=${revoked}`);
    assert.equal((await client.next()).code, 401);
    const refused = await line((l) => l.msg === 'handshake refused' && l.endpoint === '/', 'refusal on /');
    assert.equal(refused.level, INFO);
  });

  it('logs failed logins over the socket at info with the account, never the password', async () => {
    await createPasswordUser(server, 'log-login');
    const client = clients.connect(`${server.wsUrl}/`);
    await client.next('connected');
    secrets.push('wrong-password-for-the-log-test');
    const failed = await client.request({
      type: 'login',
      username: 'log-login',
      password: 'wrong-password-for-the-log-test',
    });
    assert.equal(failed.code, 401);
    const entry = await line((l) => /login over the socket/.test(l.msg), 'login refusal');
    assert.equal(entry.level, INFO);
    assert.equal(entry.code, 'LOGIN_FAILED');
    assert.equal(entry.principal, 'log-login');
    const ok = await client.request({ type: 'login', username: 'log-login', password: 'correct-horse-battery' });
    secrets.push(ok.token, ok.wstoken, ok.body.refresh_token);
    const auth = clients.connect(`${server.wsUrl}/`);
    await auth.next('connected');
    secrets.push('not-a-token-but-still-a-secret-0123456789');
    await auth.request({ type: 'auth', token: 'not-a-token-but-still-a-secret-0123456789' });
    const authEntry = await line((l) => /auth over the socket/.test(l.msg), 'auth refusal');
    assert.equal(authEntry.code, 'TOKEN_INVALID');
  });

  it('logs connections and closes at debug, with the close code', async () => {
    const token = await userToken(server, appKey, 'log-debug');
    secrets.push(token);
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
    const connected = await client.next('connected');
    const opened = await line((l) => l.msg === 'connection opened' && l.conn === connected.body.session_id, 'open');
    assert.equal(opened.level, DEBUG);
    assert.equal(opened.principal, 'log-debug');
    client.ws.close(4000, 'bye');
    await within(client.closed, 'close');
    const closed = await line((l) => l.msg === 'connection closed' && l.conn === connected.body.session_id, 'close');
    assert.equal(closed.level, DEBUG);
    assert.equal(closed.code, 4000);
  });

  it('never writes a whole token, ticket, password or wstoken into any line', () => {
    assert.ok(lines.length > 0);
    assert.ok(secrets.length >= 8);
    for (const secret of secrets)
      for (const l of lines) assert.ok(!l.includes(secret), `a log line carries a secret: ${l.slice(0, 200)}`);
  });
});
