import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { agentLogin, api, createAppKey, startServer, type TestServer } from './helpers/test-server.js';

/** Routes that answer errors as `{error, message}`, with a body that would otherwise be accepted. */
const JSON_ROUTES: [string, Record<string, unknown>][] = [
  ['/api/v1/public/login', { username: 'validation-agent', password: 'correct-horse-battery' }],
  ['/api/v1/public/customer-token', { name: 'V', channel: 'web' }],
  ['/api/v1/customers', { name: 'V', channel: 'web' }],
  ['/api/v1/customers/token', { customerId: 'c', refreshToken: 'grt_x' }],
  ['/api/v1/customers/c/token', { refreshToken: 'grt_x' }],
];

function assertNoStack(body: unknown) {
  const text = JSON.stringify(body);
  assert.ok(!/\bat .+:\d+:\d+/.test(text), `a stack trace leaked: ${text.slice(0, 300)}`);
  assert.ok(!text.includes('"stack"'), `a stack field leaked: ${text.slice(0, 300)}`);
}

/** A 4xx whose body is `{error, message}` and nothing that looks like a stack. */
function assertClientError(res: { status: number; body: any }, status: number | null, what: string) {
  if (status === null) assert.ok(res.status >= 400 && res.status < 500, `${what}: status ${res.status}`);
  else assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body, 'object', `${what}: body is not JSON: ${res.body}`);
  assert.equal(typeof res.body.error, 'string', `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.message, 'string', `${what}: ${JSON.stringify(res.body)}`);
  assertNoStack(res.body);
}

/** Sends a body with chunked transfer encoding (no Content-Length), so only the bytes read count. */
function postChunked(server: TestServer, path: string, chunks: string[]) {
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = request(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString();
      });
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('bad input to the REST API', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    await agentLogin(server, 'validation-agent');
    appKey = await createAppKey(server);
  });
  after(() => server.close());

  it('answers malformed JSON with 400 INVALID_REQUEST on every route', async () => {
    for (const [path] of JSON_ROUTES)
      for (const raw of ['{"username":', '{username: "x"}', "{'a': 1}", '{"a":1}}', 'nul', '\u0000'])
        assertClientError(await api(server, 'POST', path, { rawBody: raw }), 400, `${path} ${JSON.stringify(raw)}`);
  });

  it('answers an empty body, a JSON array, a string or null with 400', async () => {
    for (const [path] of JSON_ROUTES)
      for (const raw of ['', '[]', '"login"', 'null', '42'])
        assertClientError(await api(server, 'POST', path, { rawBody: raw }), 400, `${path} ${JSON.stringify(raw)}`);
  });

  it('answers wrong types with 400 and does not coerce them', async () => {
    const cases: [string, Record<string, unknown>][] = [
      ['/api/v1/public/login', { username: 5, password: 'x' }],
      ['/api/v1/public/login', { username: 'validation-agent', password: ['correct-horse-battery'] }],
      ['/api/v1/public/login', { username: { $ne: null }, password: 'x' }],
      ['/api/v1/public/login', { username: 'validation-agent', password: 'correct-horse-battery', device_type: 7 }],
      ['/api/v1/public/login', { username: 'validation-agent', password: 'correct-horse-battery', device_id: 'a b' }],
      ['/api/v1/public/customer-token', { name: true, channel: 'web' }],
      ['/api/v1/public/customer-token', { name: 'V', channel: 'web', email: 5 }],
      ['/api/v1/customers', { name: 'V', channel: 'web', metadata: 'not-an-object' }],
      ['/api/v1/customers/token', { customerId: 5, refreshToken: 'grt_x' }],
      ['/api/v1/customers/c/token', { refreshToken: 12 }],
    ];
    for (const [path, body] of cases)
      assertClientError(await api(server, 'POST', path, { body }), 400, `${path} ${JSON.stringify(body)}`);
  });

  it('answers missing and empty required fields with 400', async () => {
    const cases: [string, Record<string, unknown>][] = [
      ['/api/v1/public/login', {}],
      ['/api/v1/public/login', { username: 'validation-agent' }],
      ['/api/v1/public/login', { username: '', password: 'x' }],
      ['/api/v1/public/customer-token', { name: 'V' }],
      ['/api/v1/public/customer-token', { name: '', channel: 'web' }],
      ['/api/v1/customers', { channel: 'web' }],
      ['/api/v1/customers/token', { refreshToken: 'grt_x' }],
    ];
    for (const [path, body] of cases)
      assertClientError(await api(server, 'POST', path, { body }), 400, `${path} ${JSON.stringify(body)}`);
  });

  it('refuses over-long strings with 400', async () => {
    const res = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'u'.repeat(129), password: 'x' },
    });
    assertClientError(res, 400, 'long username');
  });

  it('accepts unknown fields and ignores them', async () => {
    const login = await api(server, 'POST', '/api/v1/public/login', {
      body: { username: 'validation-agent', password: 'correct-horse-battery', remember_me: true, extra: { a: 1 } },
    });
    assert.equal(login.status, 200);
    assert.equal(login.body.remember_me, undefined);
    const customer = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'V', channel: 'web', utm_source: 'ad' },
    });
    assert.equal(customer.status, 200);
    const refreshed = await api(server, 'POST', `/api/v1/customers/${customer.body.customerId}/token`, {
      body: { refreshToken: customer.body.refreshToken, somethingElse: 1 },
    });
    assert.equal(refreshed.status, 200);
  });

  it('refuses __proto__ and constructor.prototype keys with 400 and pollutes nothing', async () => {
    const bodies = [
      '{"__proto__": {"polluted": "yes"}, "username": "validation-agent", "password": "correct-horse-battery"}',
      '{"username": "validation-agent", "password": "correct-horse-battery", "constructor": {"prototype": {"polluted": "yes"}}}',
      '{"name": "V", "channel": "web", "metadata": {"__proto__": {"polluted": "yes"}}}',
    ];
    for (const [path] of JSON_ROUTES)
      for (const raw of bodies)
        assertClientError(await api(server, 'POST', path, { rawBody: raw }), 400, `${path} ${raw.slice(0, 40)}`);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
  });

  it('answers a body over server.bodyLimit with 413 PAYLOAD_TOO_LARGE', async () => {
    const big = JSON.stringify({ username: 'validation-agent', password: 'p'.repeat(70_000) });
    for (const [path] of JSON_ROUTES) {
      const res = await api(server, 'POST', path, { rawBody: big });
      assertClientError(res, 413, path);
      assert.equal(res.body.error, 'PAYLOAD_TOO_LARGE');
    }
  });

  it('answers a chunked body that grows over the limit with 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await postChunked(server, '/api/v1/public/login', [
      '{"username": "validation-agent", "password": "',
      'p'.repeat(40_000),
      'p'.repeat(40_000),
      '"}',
    ]);
    assertClientError(res, 413, 'chunked');
    assert.equal(res.body.error, 'PAYLOAD_TOO_LARGE');
  });

  it('answers a body that is not JSON by its content type with a 4xx JSON error', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await api(server, 'POST', '/api/v1/public/login', {
        rawBody: 'username=validation-agent&password=correct-horse-battery',
        headers: { 'content-type': contentType },
      });
      assertClientError(res, null, contentType);
      assert.equal(res.body.token, undefined);
    }
  });

  it('refuses deeply nested JSON with 400, in every route shape, and stores nothing', async () => {
    const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const before = await server.gatehouse.services.store.countPrincipals();
    for (const depth of [40, 30_000]) {
      const customer = await api(server, 'POST', '/api/v1/customers', {
        rawBody: `{"name": "V", "channel": "web", "metadata": {"a": ${deep(depth)}}}`,
      });
      assertClientError(customer, 400, `metadata ${depth} deep`);
      assert.equal(customer.body.error, 'INVALID_REQUEST');
      const token = await api(server, 'POST', '/api/v1/public/customer-token', {
        rawBody: `{"name": "V", "channel": "web", "extra": ${deep(depth)}}`,
      });
      assertClientError(token, 400, `unknown field ${depth} deep`);
      const openApi = await api(server, 'POST', '/openapi/v1/user/login', {
        headers: { 'x-app-key': appKey },
        rawBody: `{"id": "deep", "nickname": "D", "device": "im_web", "extras": ${deep(depth)}}`,
      });
      assert.equal(openApi.status, 400, `extras ${depth} deep: ${JSON.stringify(openApi.body)}`);
      assert.equal(openApi.body.code, 400);
      assert.equal(typeof openApi.body.msg, 'string');
      const refresh = await api(server, 'POST', '/api/refresh-token', {
        rawBody: `{"refresh_token": "grt_x", "extra": ${deep(depth)}}`,
      });
      assert.equal(refresh.status, 400);
      assert.equal(refresh.body.code, 400);
    }
    assert.deepEqual(await server.gatehouse.services.store.countPrincipals(), before);
  });

  it('accepts metadata and extras nested a reasonable depth', async () => {
    const nested = JSON.parse(`${'{"a":'.repeat(10)}1${'}'.repeat(10)}`);
    const customer = await api(server, 'POST', '/api/v1/customers', {
      body: { name: 'V', channel: 'web', metadata: { nested } },
    });
    assert.equal(customer.status, 200);
    const user = await api(server, 'POST', '/openapi/v1/user/login', {
      headers: { 'x-app-key': appKey },
      body: { id: 'nested-extras', nickname: 'N', device: 'im_web', extras: { nested } },
    });
    assert.equal(user.status, 200);
    assert.deepEqual(user.body.data.imUserVo.extras, { nested });
  });

  it('does not store unknown fields sent with a customer token request', async () => {
    const res = await api(server, 'POST', '/api/v1/public/customer-token', {
      body: { name: 'V', channel: 'web', email: 'v@example.com', utm_source: 'ad', isAdmin: true },
    });
    assert.equal(res.status, 200);
    const record = await server.gatehouse.services.store.getPrincipal(res.body.customerId);
    assert.deepEqual(record?.extras, { channel: 'web', email: 'v@example.com' });
  });

  it('answers a path with broken percent-encoding with 400 JSON', async () => {
    for (const path of ['/api/v1/customers/%E0%A4%A/token', '/api/v1/admin/principals/%zz/kick']) {
      const res = await api(server, 'POST', path, {
        body: { refreshToken: 'grt_x' },
        headers: { 'x-admin-key': server.adminKey },
      });
      assertClientError(res, 400, path);
      assert.equal(res.body.error, 'INVALID_REQUEST');
    }
  });

  it('answers unknown routes and methods with 404 JSON', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/api/v1/public/login'],
      ['DELETE', '/api/v1/customers'],
      ['POST', '/api/v2/public/login'],
      ['GET', '/api/v1/admin'],
    ] as const) {
      const res = await api(server, method, path);
      assertClientError(res, 404, `${method} ${path}`);
      assert.equal(res.body.error, 'NOT_FOUND');
    }
  });

  it('does not echo a token from the URL of an unknown route', async () => {
    const login = await agentLogin(server, 'validation-agent');
    const res = await api(server, 'GET', `/no-such-route?token=${login.token}`);
    assert.equal(res.status, 404);
    assert.ok(!JSON.stringify(res.body).includes(login.token));
  });

  it('answers bad input to /api/refresh-token in its own {code, err_msg} shape', async () => {
    const cases: [string, { rawBody?: string; body?: unknown }, number][] = [
      ['malformed JSON', { rawBody: '{"refresh_token":' }, 400],
      ['wrong type', { body: { refresh_token: 5 } }, 400],
      ['missing field', { body: {} }, 400],
      ['__proto__ key', { rawBody: '{"__proto__": {"x": 1}, "refresh_token": "grt_x"}' }, 400],
      ['oversized body', { rawBody: JSON.stringify({ refresh_token: 'r'.repeat(70_000) }) }, 413],
    ];
    for (const [what, options, status] of cases) {
      const res = await api(server, 'POST', '/api/refresh-token', options);
      assert.equal(res.status, status, what);
      assert.equal(res.body.code, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(typeof res.body.err_msg, 'string', what);
      assert.notEqual(res.body.err_msg, '', what);
      assert.equal(res.body.body, null, what);
      assertNoStack(res.body);
    }
  });

  it('answers bad input to /openapi/v1/user/login in its own {code, msg} shape', async () => {
    const headers = { 'x-app-key': appKey };
    const cases: [string, { rawBody?: string; body?: unknown }, number][] = [
      ['malformed JSON', { rawBody: '{"id":' }, 400],
      ['wrong type', { body: { id: 5, nickname: 'N', device: 'im_web' } }, 400],
      ['missing device', { body: { id: 'v1', nickname: 'N' } }, 400],
      ['bad device', { body: { id: 'v1', nickname: 'N', device: 'has space' } }, 400],
      ['__proto__ key', { rawBody: '{"__proto__": {"x": 1}, "id": "v1", "nickname": "N", "device": "im_web"}' }, 400],
      [
        'oversized body',
        { rawBody: JSON.stringify({ id: 'v1', nickname: 'n'.repeat(70_000), device: 'im_web' }) },
        413,
      ],
    ];
    for (const [what, options, status] of cases) {
      const res = await api(server, 'POST', '/openapi/v1/user/login', { headers, ...options });
      assert.equal(res.status, status, what);
      assert.equal(res.body.code, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(typeof res.body.msg, 'string', what);
      assertNoStack(res.body);
    }
  });

  it('answers an invalid customer id in the path with 400', async () => {
    const res = await api(server, 'POST', `/api/v1/customers/${'c'.repeat(200)}/token`, {
      body: { refreshToken: 'grt_x' },
    });
    assertClientError(res, 400, 'long id');
  });
});

describe('health and the OpenAPI document', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('GET /healthz answers 200 {status:"ok"}', async () => {
    const res = await api(server, 'GET', '/healthz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok' });
  });

  it('GET /readyz answers 200 when the store and broker answer', async () => {
    const res = await api(server, 'GET', '/readyz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ready', store: 'ok', broker: 'ok' });
  });

  it('GET /openapi.json is an OpenAPI document listing every REST path', async () => {
    const res = await fetch(`${server.url}/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const doc = JSON.parse(await res.text());
    assert.match(doc.openapi, /^3\./);
    const expected: [string, string][] = [
      ['post', '/api/v1/public/login'],
      ['post', '/api/v1/public/customer-token'],
      ['post', '/api/v1/customers'],
      ['post', '/api/v1/customers/{customerId}/token'],
      ['post', '/api/v1/customers/token'],
      ['post', '/api/refresh-token'],
      ['get', '/api/v1/public/validate-token'],
      ['post', '/openapi/v1/user/login'],
      ['post', '/api/v1/ws-ticket'],
      ['post', '/api/v1/auth/logout'],
      ['get', '/healthz'],
      ['get', '/readyz'],
      ['get', '/api/v1/admin/connections'],
      ['post', '/api/v1/admin/principals/{id}/kick'],
      ['post', '/api/v1/admin/principals/{id}/revoke'],
      ['post', '/api/v1/admin/principals/{id}/block'],
      ['post', '/api/v1/admin/principals/{id}/unblock'],
      ['post', '/api/v1/admin/agents'],
      ['post', '/api/v1/admin/app-keys'],
      ['get', '/api/v1/admin/app-keys'],
      ['get', '/api/v1/admin/stats'],
    ];
    const missing = expected.filter(([method, path]) => !doc.paths?.[path]?.[method]);
    assert.deepEqual(missing, []);
    const login = doc.paths['/api/v1/public/login'].post;
    assert.ok(
      login.requestBody?.content?.['application/json']?.schema?.properties?.username,
      'the body schema is listed',
    );
  });
});

describe('readiness when the store is gone', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('GET /readyz answers 503 with the failing part named', async () => {
    await server.gatehouse.services.store.close();
    const res = await api(server, 'GET', '/readyz');
    assert.equal(res.status, 503);
    assert.equal(res.body.status, 'not ready');
    assert.equal(res.body.store, 'unavailable', 'the reason is in the log only');
    assert.equal(res.body.broker, 'ok');
    const health = await api(server, 'GET', '/healthz');
    assert.equal(health.status, 200, 'the process is still alive');
  });
});
