import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Gatehouse } from '../src/app.js';
import { ManualClock } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { createLogger, keyFingerprint, redactHeaders, redactUrl } from '../src/logger.js';
import { closeClient, passwordUser, tryConnect } from './helpers/auth-fixtures.js';
import { adminQuery, createTestDatabase, POSTGRES_SKIP } from './helpers/postgres.js';
import {
  agentLogin,
  api,
  createAppKey,
  newCustomer,
  startServer,
  type TestServer,
  userToken,
} from './helpers/test-server.js';
import { TestClient, WAIT_MS } from './helpers/ws-client.js';

/** A pino destination that keeps every line. */
function captureLines() {
  const lines: string[] = [];
  return {
    lines,
    stream: {
      write(line: string) {
        lines.push(line);
      },
    },
  };
}

/** Like startServer, but logging at trace level into `lines`. */
async function startLoggedServer(lines: ReturnType<typeof captureLines>): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-logs-'));
  const clock = new ManualClock(Date.now());
  const config = loadConfig({
    overrides: {
      server: { host: '127.0.0.1', port: 0 },
      dataDir,
      adminKey: 'log-test-admin-key-0123456789',
      log: { level: 'trace' },
      limits: { handshakesPerSecondPerIp: 100_000, loginAttemptsPerIp: 1000, customerTokensPerMinutePerIp: 10_000 },
    },
  });
  const gatehouse = await Gatehouse.create({ config, clock, logger: createLogger('trace', lines.stream) });
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

describe('logs never carry a whole credential', () => {
  const captured = captureLines();
  let server: TestServer;
  const secrets: string[] = [];
  before(async () => {
    server = await startLoggedServer(captured);
  });
  after(() => server.close());

  it('keeps tokens, tickets, refresh tokens, keys and passwords out of every line while clients connect', async () => {
    secrets.push(server.adminKey);
    const appKey = await createAppKey(server);
    secrets.push(appKey);
    const agent = await agentLogin(server, 'log-agent', 'log-agent-password-42');
    secrets.push(agent.token, 'log-agent-password-42');
    const user = await passwordUser(server, 'log-user', 'log-user-password-42');
    secrets.push(user.token, user.refresh_token, 'log-user-password-42');
    const appUser = await userToken(server, appKey, 'log-app-user');
    secrets.push(appUser);
    const customer = await newCustomer(server);
    secrets.push(customer.token, customer.refreshToken);
    const ticket = (await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${appUser}` } }))
      .body.ticket as string;
    secrets.push(ticket);
    const rotated = await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: user.refresh_token } });
    secrets.push(rotated.body.body.access_token, rotated.body.body.refresh_token);

    // Succeeding handshakes with the credential in the URL, a header and the subprotocol.
    const accepted = [
      await tryConnect(`${server.wsUrl}/ws?token=${appUser}&device_type=im_web`),
      await tryConnect(`${server.wsUrl}/ws?ticket=${ticket}`),
      await tryConnect(`${server.wsUrl}/ws/chat?access_token=${agent.token}`),
      await tryConnect(`${server.wsUrl}/ws/chat`, { protocols: ['gatehouse.v1', `bearer.${customer.token}`] }),
      await tryConnect(`${server.wsUrl}/`, { headers: { token: `Bearer ${user.token}` } }),
    ];
    for (const outcome of accepted) {
      assert.equal(outcome.kind, 'connected');
      if (outcome.kind === 'connected') await closeClient(outcome.client);
    }
    // Failing ones: wrong kind, reused ticket, tampered token, two different credentials, logged out.
    const tampered = `${appUser.slice(0, -6)}AAAAAA`;
    secrets.push(tampered);
    for (const url of [
      `${server.wsUrl}/ws?token=${agent.token}`,
      `${server.wsUrl}/ws?ticket=${ticket}`,
      `${server.wsUrl}/ws?token=${tampered}`,
      `${server.wsUrl}/ws?token=${appUser}&access_token=${customer.token}`,
      `${server.wsUrl}/ws/chat?token=${customer.refreshToken}`,
    ]) {
      const outcome = await tryConnect(url);
      assert.equal(outcome.kind, 'rejected', url.slice(0, 60));
    }
    // On / a bad token opens the socket with the error as its first frame (no `connected`).
    const loginMode = TestClient.connect(`${server.wsUrl}/?token=${tampered}`);
    assert.equal((await loginMode.next()).error, 'TOKEN_INVALID');
    const login = await loginMode.request({ type: 'login', username: 'log-user', password: 'wrong-password' });
    assert.equal(login.error, 'LOGIN_FAILED');
    await closeClient(loginMode);
    // REST calls with credentials in queries, headers and bodies.
    await api(server, 'GET', `/api/v1/public/validate-token?token=${agent.token}`);
    await api(server, 'GET', `/no-such-route?token=${agent.token}`);
    await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'log-agent', password: 'wrong-password-42' },
    });
    await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: user.refresh_token } });
    await api(server, 'POST', '/api/v1/auth/logout', { headers: { authorization: `Bearer ${agent.token}` } });
    const revoked = await tryConnect(`${server.wsUrl}/ws/chat?token=${agent.token}`);
    assert.equal(revoked.kind, 'rejected');

    // And failures the server logs as errors: the store goes away under a handshake and a request.
    await server.gatehouse.services.store.close();
    const broken = await tryConnect(`${server.wsUrl}/ws?token=${rotated.body.body.access_token}`);
    if (broken.kind === 'connected') await closeClient(broken.client);
    await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'log-user', password: 'log-user-password-42' },
    });
    await api(server, 'POST', '/api/v1/ws-ticket', { headers: { authorization: `Bearer ${appUser}` } });

    assert.ok(captured.lines.length > 0, 'the logger wrote something (the capture works)');
    assert.ok(
      captured.lines.some((line) => JSON.parse(line).level >= 50),
      'the store failures were logged as errors',
    );
    for (const line of captured.lines) {
      assert.doesNotThrow(() => JSON.parse(line), `not a JSON line: ${line}`);
      for (const secret of secrets)
        assert.ok(!line.includes(secret), `a log line carries a credential (${secret.slice(0, 8)}…): ${line}`);
    }
  });

  it('keeps the credentials of a request the HTTP parser refused out of the trace lines', async () => {
    const token = `eyJhbGciOiJIUzI1NiJ9.${'r'.repeat(40)}.raw-packet-secret-0123`;
    const bytes = [...Buffer.from(token.slice(0, 24))].join(',');
    const before = captured.lines.length;
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    socket.on('error', () => {});
    // A header line without a colon: the parser refuses the request, with its raw bytes in the error.
    socket.write(
      `GET /api/v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nbroken header\r\n\r\n`,
    );
    await new Promise((resolve) => socket.once('data', resolve));
    socket.destroy();
    let lines: string[] = [];
    for (let i = 0; i < 100 && lines.length === 0; i++) {
      lines = captured.lines.slice(before).filter((l) => l.includes('client error'));
      if (lines.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(lines.length > 0, 'the refusal was logged (the test reaches the path)');
    for (const line of lines) {
      assert.ok(!line.includes(token), line);
      assert.ok(!line.includes(bytes), `the raw request bytes are in the log: ${line.slice(0, 200)}`);
    }
  });
});

describe('the logger and URL redaction', () => {
  it('shortens credential fields and headers to their first 8 and last 4 characters', () => {
    const captured = captureLines();
    const log = createLogger('info', captured.stream);
    const token = `eyJhbGciOiJIUzI1NiJ9.${'x'.repeat(40)}.signature-part-0123`;
    log.info(
      {
        token,
        refresh_token: 'grt_refresh-token-value-0123456789',
        refreshToken: 'grt_refresh-token-value-9876543210',
        ticket: 'gtk_ticket-value-0123456789',
        password: 'a-long-password-value',
        headers: {
          authorization: `Bearer ${token}`,
          token,
          'x-app-key': 'gak_app-key-value-0123456789',
          'x-admin-key': 'gadm_admin-key-value-0123456789',
          'sec-websocket-protocol': `gatehouse.v1, bearer.${token}`,
        },
      },
      'credentials',
    );
    const [line] = captured.lines;
    assert.ok(line);
    for (const secret of [
      token,
      'grt_refresh-token-value-0123456789',
      'grt_refresh-token-value-9876543210',
      'gtk_ticket-value-0123456789',
      'a-long-password-value',
      'gak_app-key-value-0123456789',
      'gadm_admin-key-value-0123456789',
    ])
      assert.ok(!line.includes(secret), `${secret.slice(0, 8)} is in ${line}`);
    const parsed = JSON.parse(line);
    assert.equal(parsed.token, `${token.slice(0, 8)}…${token.slice(-4)}`);
  });

  it('redacts token, access_token and ticket in URLs', () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.payload-payload-payload.signature';
    const url = redactUrl(`/ws?device_type=im_web&token=${token}&access_token=${token}&TICKET=${token}&x=1`);
    assert.ok(!url.includes(token), url);
    assert.ok(url.includes('device_type=im_web') && url.endsWith('&x=1'), url);
    assert.equal(url.split(`${token.slice(0, 8)}…${token.slice(-4)}`).length, 4);
  });

  it('redacts credential parameters however the query parser would read their names', () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.payload-payload-payload.signature';
    for (const name of ['%74oken', 'Token', 'refresh_token', 'wstoken', 'password', 'pwd', 'access%5Ftoken']) {
      const url = redactUrl(`/x?a=1&${name}=${token}&b=2`);
      assert.ok(!url.includes(token), url);
      assert.equal(url, `/x?a=1&${name}=${token.slice(0, 8)}…${token.slice(-4)}&b=2`);
    }
    // A value percent-encoded whole is shortened after decoding, so no encoded copy survives.
    const encoded = [...token].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
    assert.ok(!redactUrl(`/x?token=${encoded}`).includes(encoded));
    assert.equal(redactUrl('/x?tokens=1&token'), '/x?tokens=1&token');
    assert.equal(redactUrl('/x'), '/x');
  });

  it('shortens credential headers in a copy and keeps the shortened value through the logger', () => {
    const token = `eyJhbGciOiJIUzI1NiJ9.${'x'.repeat(40)}.signature-part-0123`;
    const headers = redactHeaders({
      authorization: `Bearer ${token}`,
      cookie: `sid=${token}`,
      'proxy-authorization': `Basic ${token}`,
      'user-agent': 'test',
      'x-forwarded-for': ['10.0.0.1', '10.0.0.2'],
    });
    assert.equal(headers['user-agent'], 'test');
    assert.equal(headers['x-forwarded-for'], '10.0.0.1, 10.0.0.2');
    assert.equal(headers.authorization, `Bearer e…0123`);
    const captured = captureLines();
    createLogger('info', captured.stream).info({ headers }, 'headers');
    const [line] = captured.lines;
    assert.ok(line && !line.includes(token));
    assert.equal(JSON.parse(line).headers.authorization, 'Bearer e…0123');
  });

  it('names a key by the first 8 hex digits of its SHA-256', () => {
    assert.equal(keyFingerprint('abc'), 'ba7816bf');
  });
});

describe('a lost PostgreSQL connection in the log', { skip: POSTGRES_SKIP }, () => {
  it('is one short line with the error code, not the driver client with its parameters', async () => {
    const db = await createTestDatabase();
    const lines: string[] = [];
    const server = await startServer(
      { store: { url: db.url }, log: { level: 'warn' } },
      { logStream: { write: (line) => lines.push(line) } },
    );
    try {
      // The pool holds idle connections after the start; the server ends them.
      await adminQuery(
        db.url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'gatehouse'",
      );
      const deadline = Date.now() + WAIT_MS;
      let lost: string | undefined;
      while (!lost && Date.now() < deadline) {
        lost = lines.find((line) => line.includes('a PostgreSQL connection was lost'));
        if (!lost) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(lost, 'the lost connection is logged');
      const entry = JSON.parse(lost);
      assert.equal(entry.err.code, '57P01');
      assert.equal(entry.err.client, undefined, 'no driver client in the line');
      assert.ok(lost.length < 2000, `${lost.length} characters`);
    } finally {
      await server.close();
      await db.drop();
    }
  });
});
