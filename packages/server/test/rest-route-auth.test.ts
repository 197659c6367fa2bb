import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { closeClient, openSocket, validate } from './helpers/auth-fixtures.js';
import { api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';

/** A request with the path sent byte for byte (fetch would normalise dot segments). */
function rawRequest(
  server: TestServer,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  const { port } = new URL(server.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Percent-encodes the character at `index` of `segment` (lower- or upper-case hex). */
const encodeAt = (segment: string, index: number, upper = false) => {
  const hex = (segment.charCodeAt(index) as number).toString(16);
  return `${segment.slice(0, index)}%${upper ? hex.toUpperCase() : hex}${segment.slice(index + 1)}`;
};

/** Every odd spelling of a path: each segment encoded, doubled slashes, case changes, trailing slash, dots. */
export function pathVariants(path: string): string[] {
  const segments = path.split('/').slice(1);
  const join = (parts: string[]) => `/${parts.join('/')}`;
  const out = new Set<string>();
  segments.forEach((segment, i) => {
    const replace = (value: string) => join(segments.map((s, j) => (j === i ? value : s)));
    if (/^[a-z]/i.test(segment)) {
      out.add(replace(encodeAt(segment, 0)));
      out.add(replace(encodeAt(segment, 0, true)));
      out.add(replace(encodeAt(segment, segment.length - 1)));
      out.add(replace([...segment].map((_, k) => encodeAt(segment, k).slice(k, k + 3)).join('')));
      out.add(replace(segment.toUpperCase()));
      out.add(replace(segment[0]?.toUpperCase() + segment.slice(1)));
    }
    out.add(replace(`${segment}/`));
    out.add(`${join(segments.slice(0, i))}//${segments.slice(i).join('/')}`);
    out.add(replace(`x/../${segment}`));
    out.add(replace(`./${segment}`));
    out.add(replace(`${segment};x`));
  });
  out.add(`${path}/`);
  out.add(`/${path}`);
  out.add(`/${path.slice(1).replaceAll('/', '%2F')}`);
  out.add(path.replace('/api/v1/', '/api%2Fv1/'));
  out.add(path.replace('/admin/', '/admin%2F'));
  out.add(`${path}?x=/api/v1/public/login`);
  out.add(`${path}#frag`);
  out.delete(path);
  return [...out];
}

describe('route authorization is attached to routes, never to a URL prefix', () => {
  let server: TestServer;
  let appKey: string;
  let victimToken: string;

  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server, 'route auth app');
    victimToken = await userToken(server, appKey, 'victim');
  });
  after(() => server.close());

  const adminRoutes: [string, string, unknown?][] = [
    ['GET', '/api/v1/admin/connections'],
    ['GET', '/api/v1/admin/stats'],
    ['GET', '/api/v1/admin/app-keys'],
    ['POST', '/api/v1/admin/app-keys', { name: 'sneaky-key' }],
    ['POST', '/api/v1/admin/agents', { username: 'sneaky', password: 'sneaky-password' }],
    ['POST', '/api/v1/admin/principals/victim/kick', {}],
    ['POST', '/api/v1/admin/principals/victim/revoke'],
    ['POST', '/api/v1/admin/principals/victim/block'],
    ['POST', '/api/v1/admin/principals/victim/unblock'],
  ];

  it('answers 401 or 404 to every encoded, doubled-slash, case-changed and trailing-slash admin path without the key, and never acts', async () => {
    const socket = await openSocket(server, '/ws', victimToken);
    try {
      let tried = 0;
      for (const [method, path, body] of adminRoutes)
        for (const variant of pathVariants(path))
          for (const headers of [{}, { 'x-admin-key': 'wrong' }, { authorization: `Bearer ${victimToken}` }] as Record<
            string,
            string
          >[]) {
            const res = await rawRequest(server, method, variant, headers, body);
            tried++;
            assert.ok(
              res.status === 401 || res.status === 404,
              `${method} ${variant} with ${Object.keys(headers).join(',') || 'no key'} answered ${res.status}: ${res.body}`,
            );
          }
      assert.ok(tried > 500, `tried ${tried} variants`);

      const sneaky = await api(server, 'POST', '/api/v1/public/login', {
        body: { username: 'sneaky', password: 'sneaky-password' },
      });
      assert.equal(sneaky.status, 401, 'no agent was created');
      const keys = await api(server, 'GET', '/api/v1/admin/app-keys', { headers: { 'x-admin-key': server.adminKey } });
      assert.deepEqual(
        keys.body.appKeys.map((k: { name: string }) => k.name),
        ['route auth app'],
        'no app key was created',
      );
      const still = await validate(server, victimToken);
      assert.equal(still.body.valid, true, 'the victim was neither revoked nor blocked');
      assert.equal(socket.ws.readyState, socket.ws.OPEN, 'the victim was not kicked');
    } finally {
      await closeClient(socket);
    }
  });

  it('answers 401 to the percent-encoded admin paths found in review (the router decodes them to admin routes)', async () => {
    for (const [method, path, body] of [
      ['GET', '/api/v1/%61dmin/stats'],
      ['GET', '/%61pi/v1/admin/connections'],
      ['POST', '/api/v1/adm%69n/agents', { username: 'sneaky2', password: 'sneaky-password' }],
      ['POST', '/api/v1/adm%69n/app-keys', { name: 'sneaky-key-2' }],
    ] as [string, string, unknown?][]) {
      const res = await rawRequest(server, method, path, {}, body);
      assert.equal(res.status, 401, `${method} ${path}: ${res.body}`);
      assert.equal(JSON.parse(res.body).error, 'TOKEN_INVALID');
    }
  });

  it('protects the bearer, app-key and group routes under odd spellings too', async () => {
    const routes: [string, string, Record<string, string>, unknown?][] = [
      ['GET', '/api/v1/conversations', {}],
      ['GET', '/api/v1/conversations/c1/messages', {}],
      ['GET', '/api/v1/sessions', {}],
      ['POST', '/api/v1/sessions', {}],
      ['POST', '/api/v1/sessions/s1/claim', {}],
      ['POST', '/api/v1/sessions/s1/close', {}],
      ['POST', '/api/v1/ws-ticket', {}],
      ['POST', '/api/v1/auth/logout', {}],
      ['POST', '/api/v1/conversations', {}, { kind: 'group', name: 'g', members: ['victim'] }],
      ['POST', '/api/v1/conversations/c1/members', {}, { members: ['victim'] }],
      ['DELETE', '/api/v1/conversations/c1/members/victim', {}],
      ['POST', '/openapi/v1/user/login', {}, { id: 'intruder', nickname: 'I', device: 'im_web' }],
    ];
    for (const [method, path, headers, body] of routes)
      for (const variant of [path, ...pathVariants(path)]) {
        const res = await rawRequest(server, method, variant, headers, body);
        assert.ok(res.status === 401 || res.status === 404, `${method} ${variant} answered ${res.status}: ${res.body}`);
      }
  });
});
