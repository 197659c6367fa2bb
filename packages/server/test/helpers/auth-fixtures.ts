import assert from 'node:assert/strict';
import { createHmac, createSecretKey, type KeyObject, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JWTPayload, SignJWT } from 'jose';
import type { ClientOptions } from 'ws';
import type { KeysFile } from '../../src/tokens/signing-keys.js';
import { api, type TestServer } from './test-server.js';
import { type Frame, TestClient, WAIT_MS } from './ws-client.js';

/** The signing key of a test server, read from the keys file in its data folder (HS256 default). */
export function serverSigningKey(server: TestServer): { kid: string; key: KeyObject } {
  const file = JSON.parse(readFileSync(join(server.dataDir, 'keys.json'), 'utf8')) as KeysFile;
  const entry = file.keys.find((k) => k.kid === file.signingKid);
  if (!entry?.secret) throw new Error('the test server has no HS256 signing secret');
  return { kid: entry.kid, key: createSecretKey(Buffer.from(entry.secret, 'base64url')) };
}

/** Claims the server would accept for a `user` that exists nowhere (tokens of unknown principals are allowed). */
export function userClaims(
  server: TestServer,
  overrides: Record<string, unknown> = {},
): JWTPayload & Record<string, any> {
  const iat = Math.floor(server.clock.now() / 1000);
  return {
    sub: 'forged-user',
    kind: 'user',
    sid: randomUUID(),
    jti: randomUUID(),
    iat,
    exp: iat + 3600,
    iss: 'gatehouse',
    aud: 'gatehouse',
    name: 'Forged',
    ...overrides,
  };
}

/** Signs claims with the server's own key (or `key`), so a test controls every claim and header field. */
export async function signToken(
  server: TestServer,
  claims: Record<string, unknown>,
  options: { key?: KeyObject | Uint8Array; alg?: string; kid?: string | null } = {},
): Promise<string> {
  const own = options.key && options.kid !== undefined ? null : serverSigningKey(server);
  const kid = options.kid === undefined ? own?.kid : options.kid;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? 'HS256', typ: 'JWT', ...(kid == null ? {} : { kid }) })
    .sign(options.key ?? (own as { key: KeyObject }).key);
}

/** An HS256 JWS over any header and payload text, signed by hand (jose refuses to sign some headers). */
export function hmacToken(header: Record<string, unknown>, payload: string, secret: KeyObject | Uint8Array): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A JWT with `alg: none` and an empty signature. */
export function unsignedToken(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

/** Replaces the payload of a signed token, keeping its header and signature. */
export function withPayload(token: string, claims: Record<string, unknown>): string {
  const [header, , signature] = token.split('.');
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

/** Creates a password `user` account (operator-managed) and logs it in over REST. */
export async function passwordUser(server: TestServer, username: string, password = 'user-password-1') {
  await server.gatehouse.services.auth.createAccount({ kind: 'user', username, password });
  const login = await api(server, 'POST', '/api/v1/public/login', { body: { username, password } });
  if (login.status !== 200) throw new Error(`user login: ${JSON.stringify(login.body)}`);
  return login.body as {
    token: string;
    refresh_token: string;
    expiresAt: number;
    user: { id: string; kind: string; name: string };
  };
}

export type HandshakeOutcome =
  | { kind: 'rejected'; status: number; code: string | undefined; message: string | undefined; body: any }
  | { kind: 'connected'; client: TestClient; frame: Frame };

/**
 * Opens a WebSocket and reports how the handshake ended: refused in HTTP (status, the
 * X-WebSocket-Error-Code header and the JSON body) or accepted (the first `connected` frame).
 */
export function tryConnect(url: string, options: ClientOptions & { protocols?: string[] } = {}) {
  const client = TestClient.connect(url, options);
  return new Promise<HandshakeOutcome>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no handshake outcome for ${url} within ${WAIT_MS} ms`)), WAIT_MS);
    client.rejection.then((r) => {
      clearTimeout(timer);
      const header = (name: string) => {
        const value = r.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      resolve({
        kind: 'rejected',
        status: r.status,
        code: header('x-websocket-error-code'),
        message: header('x-websocket-error-message'),
        body: r.body,
      });
    });
    client.opened.then(
      () =>
        client.next('connected').then(
          (frame) => {
            clearTimeout(timer);
            resolve({ kind: 'connected', client, frame });
          },
          (err) => {
            clearTimeout(timer);
            reject(err);
          },
        ),
      () => {},
    );
  });
}

/**
 * Connects to `/ws` with the token, retrying while the node answers 503 SERVER_BUSY (its
 * handshakes-in-progress bound), for at most WAIT_MS; any other refusal fails.
 */
export async function connectWhenAdmitted(server: TestServer, token: string) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const outcome = await tryConnect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
    if (outcome.kind === 'connected') return outcome;
    assert.equal(outcome.code, 'SERVER_BUSY');
    if (Date.now() > deadline) assert.fail('still refused with SERVER_BUSY: the places stay taken');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Connects with the token in the Authorization header; throws unless the socket is authenticated. */
export async function openSocket(
  server: TestServer,
  path: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<TestClient> {
  const outcome = await tryConnect(`${server.wsUrl}${path}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
  if (outcome.kind !== 'connected') throw new Error(`handshake refused: ${outcome.status} ${outcome.code}`);
  if (!outcome.frame.body?.user) throw new Error(`socket is not authenticated: ${JSON.stringify(outcome.frame)}`);
  return outcome.client;
}

/** Closes a client if it is still open and waits for the close. */
export async function closeClient(client: TestClient): Promise<void> {
  if (client.ws.readyState === client.ws.CLOSED) return;
  if (client.ws.readyState === client.ws.CONNECTING) {
    client.ws.terminate();
    return;
  }
  client.close();
  await client.closed;
}

/** `GET /api/v1/public/validate-token?token=`. */
export async function validate(server: TestServer, token: string) {
  return api(server, 'GET', `/api/v1/public/validate-token?token=${encodeURIComponent(token)}`);
}
