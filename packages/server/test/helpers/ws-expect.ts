import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { ClientOptions } from 'ws';
import { api, type TestServer } from './test-server.js';
import { type Frame, TestClient, WAIT_MS } from './ws-client.js';

/** Resolves with `promise`, or fails after a bound (never an assertion on timing). */
export function within<T>(promise: Promise<T>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Every client a test opens, so `afterEach` can drop whatever is still open and the
 * process exits by itself.
 */
export class Clients {
  private list: TestClient[] = [];

  connect(url: string, options: ClientOptions & { protocols?: string[] } = {}): TestClient {
    const client = TestClient.connect(url, options);
    this.list.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    const list = this.list;
    this.list = [];
    for (const client of list) client.ws.terminate();
    await Promise.all(list.map((c) => within(c.closed, 'client close')));
  }
}

/** The response headers of a successful upgrade (attach before the handshake completes). */
export function upgradeHeaders(client: TestClient): Promise<IncomingMessage['headers']> {
  return new Promise((resolve) => client.ws.once('upgrade', (res) => resolve(res.headers)));
}

/**
 * A refusal in the HTTP handshake as SPEC §3 has it: the status, `X-WebSocket-Error-Code`,
 * `X-WebSocket-Error-Message` and a JSON body `{code, error, err_msg}`; the socket never opens.
 */
export async function expectHttpRejection(
  client: TestClient,
  status: number,
  code: string,
): Promise<{ headers: IncomingMessage['headers']; body: any }> {
  const rejection = await within(client.rejection, `HTTP rejection ${code}`);
  client.ws.terminate();
  assert.equal(rejection.status, status);
  assert.equal(rejection.headers['x-websocket-error-code'], code);
  const message = rejection.headers['x-websocket-error-message'];
  assert.equal(typeof message, 'string');
  assert.ok((message as string).length > 0);
  assert.equal(rejection.body.code, status);
  assert.equal(rejection.body.error, code);
  assert.equal(typeof rejection.body.err_msg, 'string');
  assert.ok(rejection.body.err_msg.length > 0);
  assert.deepEqual(Object.keys(rejection.body).sort(), ['code', 'err_msg', 'error']);
  const closed = await within(client.closed, 'rejected client close');
  assert.equal(closed.code, 1006, 'a refused handshake never becomes an open socket');
  return rejection;
}

/**
 * The open-then-close refusal: the socket opens, receives the error frame, then closes with
 * `closeCode` and the error code as the reason. Returns the error frame.
 */
export async function expectErrorThenClose(
  client: TestClient,
  status: number,
  code: string,
  closeCode: number,
): Promise<Frame> {
  await within(client.opened, `open before ${code}`);
  const error = await client.next('error');
  assert.equal(error.code, status);
  assert.equal(error.error, code);
  assert.equal(error.body, null);
  assert.equal(typeof error.err_msg, 'string');
  assert.ok(error.err_msg.length > 0);
  assert.deepEqual(await within(client.closed, `close after ${code}`), { code: closeCode, reason: code });
  return error;
}

/** A socket that is still open answers a request (a round trip through the server). */
export async function assertAlive(client: TestClient): Promise<Frame> {
  assert.equal(client.ws.readyState, client.ws.OPEN, 'socket is open');
  const pong = await client.request({ type: 'ping' });
  assert.equal(pong.type, 'pong');
  return pong;
}

/** The payload of a JWT (no verification: the test only reads its own server's claims). */
export function jwtClaims(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8'));
}

/** A password account of kind `user` (what `gatehouse user add --kind user` creates). */
export async function createPasswordUser(server: TestServer, username: string, password = 'correct-horse-battery') {
  return server.gatehouse.services.auth.createAccount({ kind: 'user', username, password, name: `User ${username}` });
}

/** Creates an agent through the admin API (no login). */
export async function createAgent(server: TestServer, username: string, password = 'correct-horse-battery') {
  const res = await api(server, 'POST', '/api/v1/admin/agents', {
    headers: { 'x-admin-key': server.adminKey },
    body: { username, password, name: `Agent ${username}` },
  });
  if (res.status !== 201) throw new Error(`agent create: ${JSON.stringify(res.body)}`);
  return { username, password };
}

/** `POST /api/v1/public/login`, optionally with a device. */
export async function passwordLogin(
  server: TestServer,
  username: string,
  password = 'correct-horse-battery',
  device: { device_type?: string; device_id?: string } = {},
) {
  const res = await api(server, 'POST', '/api/v1/public/login', { body: { username, password, ...device } });
  if (res.status !== 200) throw new Error(`login: ${JSON.stringify(res.body)}`);
  return res.body as {
    token: string;
    refresh_token?: string;
    expiresAt: number;
    user: { id: string; kind: string; name: string };
  };
}

/** `GET /api/v1/admin/connections[?principal=ID]`. */
export async function adminConnections(server: TestServer, principal?: string): Promise<any[]> {
  const query = principal ? `?principal=${encodeURIComponent(principal)}` : '';
  const res = await api(server, 'GET', `/api/v1/admin/connections${query}`, {
    headers: { 'x-admin-key': server.adminKey },
  });
  assert.equal(res.status, 200);
  return res.body.connections;
}
