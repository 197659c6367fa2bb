import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { closeClient, openSocket } from './helpers/auth-fixtures.js';
import {
  agentLogin,
  api,
  createAppKey,
  newCustomer,
  startServer,
  type TestServer,
  userToken,
} from './helpers/test-server.js';

type Operation = {
  tags?: string[];
  summary?: string;
  security?: unknown[];
  responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }>;
};

describe('the OpenAPI document (/openapi.json)', () => {
  let server: TestServer;
  let doc: any;
  before(async () => {
    server = await startServer();
    doc = (await api(server, 'GET', '/openapi.json')).body;
  });
  after(() => server.close());

  const operations = (): [string, string, Operation][] =>
    Object.entries(doc.paths as Record<string, Record<string, Operation>>).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => [method, path, op] as [string, string, Operation]),
    );

  it('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  it('names servers, tags and the three security schemes', () => {
    assert.ok(Array.isArray(doc.servers) && doc.servers.length > 0);
    const schemes = doc.components.securitySchemes;
    assert.deepEqual(schemes.bearer, {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: 'An access token',
    });
    assert.equal(schemes.appKey.name, 'X-App-Key');
    assert.equal(schemes.adminKey.name, 'X-Admin-Key');
    const declared = new Set(doc.tags.map((t: { name: string }) => t.name));
    for (const [method, path, op] of operations()) {
      assert.ok(op.tags?.length, `${method} ${path} has a tag`);
      for (const tag of op.tags ?? []) assert.ok(declared.has(tag), `${method} ${path}: tag ${tag} is declared`);
      assert.ok(op.summary, `${method} ${path} has a summary`);
    }
  });

  it('gives every operation a described success response with a schema (no bare "Default Response")', () => {
    assert.ok(operations().length >= 31, `${operations().length} operations`);
    for (const [method, path, op] of operations()) {
      const codes = Object.keys(op.responses);
      const success = codes.filter((c) => c.startsWith('2'));
      assert.ok(success.length > 0, `${method} ${path}: a 2xx response`);
      for (const code of success) {
        const response = op.responses[code];
        assert.ok(response, `${method} ${path} ${code}`);
        assert.notEqual(response.description, 'Default Response', `${method} ${path} ${code}`);
        if (code === '204') continue;
        const media = Object.values(response.content ?? {});
        assert.ok(media.length > 0 && media.every((m) => m.schema), `${method} ${path} ${code} has a schema`);
      }
      if (op.security) assert.ok(codes.includes('401'), `${method} ${path}: a credentialed route documents its 401`);
    }
  });

  it('marks the credential of every protected route', () => {
    const security = (method: string, path: string) => JSON.stringify(doc.paths[path][method].security ?? []);
    assert.match(security('get', '/api/v1/admin/stats'), /adminKey/);
    assert.match(security('post', '/api/v1/ws-ticket'), /bearer/);
    assert.match(security('post', '/openapi/v1/user/login'), /appKey/);
    assert.match(security('post', '/api/v1/conversations'), /appKey.*adminKey/);
    assert.equal(security('post', '/api/v1/public/customer-token'), '[]');
  });

  it('describes real answers: every response of a run through the API matches its documented schema', async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const checked: string[] = [];
    const check = (method: string, template: string, res: { status: number; body: unknown }) => {
      const schema =
        doc.paths[template]?.[method]?.responses?.[String(res.status)]?.content?.['application/json']?.schema;
      assert.ok(schema, `${method} ${template} ${res.status} is documented`);
      const valid = ajv.validate(schema, res.body);
      assert.ok(valid, `${method} ${template} ${res.status}: ${ajv.errorsText()} in ${JSON.stringify(res.body)}`);
      checked.push(`${method} ${template} ${res.status}`);
    };
    const admin = { 'x-admin-key': server.adminKey };
    const appKey = await createAppKey(server, 'openapi app');
    const agent = await agentLogin(server, 'oa-agent');
    const customer = await newCustomer(server);
    const user = await userToken(server, appKey, 'oa-user');
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

    check(
      'post',
      '/api/v1/public/login',
      await api(server, 'POST', '/api/v1/public/login', {
        body: { username: 'oa-agent', password: 'correct-horse-battery' },
      }),
    );
    check(
      'post',
      '/api/v1/public/login',
      await api(server, 'POST', '/api/v1/public/login', { body: { username: 'oa-agent', password: 'nope' } }),
    );
    check(
      'post',
      '/api/v1/public/customer-token',
      await api(server, 'POST', '/api/v1/public/customer-token', { body: { name: 'C', channel: 'web' } }),
    );
    check(
      'post',
      '/api/v1/customers',
      await api(server, 'POST', '/api/v1/customers', { body: { name: 'C', channel: 'web', metadata: { a: 1 } } }),
    );
    const refreshed = await api(server, 'POST', `/api/v1/customers/${customer.customerId}/token`, {
      body: { refreshToken: customer.refreshToken },
    });
    check('post', '/api/v1/customers/{customerId}/token', refreshed);
    check(
      'post',
      '/api/v1/customers/token',
      await api(server, 'POST', '/api/v1/customers/token', { body: { customerId: customer.customerId } }),
    );
    for (const token of [user, customer.token, 'not-a-token'])
      check(
        'get',
        '/api/v1/public/validate-token',
        await api(server, 'GET', `/api/v1/public/validate-token?token=${token}`),
      );
    const openApi = await api(server, 'POST', '/openapi/v1/user/login', {
      headers: { 'x-app-key': appKey },
      body: { id: 'oa-2', nickname: 'N', device: 'im_web', extras: { level: 3 } },
    });
    check('post', '/openapi/v1/user/login', openApi);
    check(
      'post',
      '/openapi/v1/user/login',
      await api(server, 'POST', '/openapi/v1/user/login', { body: { id: 'x', nickname: 'x', device: 'im_web' } }),
    );
    check(
      'post',
      '/api/refresh-token',
      await api(server, 'POST', '/api/refresh-token', { body: { refresh_token: 'x' } }),
    );
    check('post', '/api/v1/ws-ticket', await api(server, 'POST', '/api/v1/ws-ticket', { headers: bearer(user) }));
    check('post', '/api/v1/ws-ticket', await api(server, 'POST', '/api/v1/ws-ticket'));
    const group = await api(server, 'POST', '/api/v1/conversations', {
      headers: { 'x-app-key': appKey },
      body: { kind: 'group', name: 'G', members: ['oa-user', 'oa-2'] },
    });
    check('post', '/api/v1/conversations', group);
    check(
      'post',
      '/api/v1/conversations/{id}/members',
      await api(server, 'POST', `/api/v1/conversations/${group.body.id}/members`, {
        headers: admin,
        body: { members: ['oa-user'] },
      }),
    );
    const socket = await openSocket(server, '/ws', user);
    const sent = await socket.request({ type: 'message', conversation_id: group.body.id, text: 'hello' });
    assert.equal(sent.code, 200);
    await closeClient(socket);
    check('get', '/api/v1/conversations', await api(server, 'GET', '/api/v1/conversations', { headers: bearer(user) }));
    const history = await api(server, 'GET', `/api/v1/conversations/${group.body.id}/messages`, {
      headers: bearer(user),
    });
    assert.equal(history.body.messages.length, 1);
    check('get', '/api/v1/conversations/{id}/messages', history);
    check('get', '/api/v1/sessions', await api(server, 'GET', '/api/v1/sessions', { headers: bearer(agent.token) }));
    check('get', '/api/v1/sessions', await api(server, 'GET', '/api/v1/sessions', { headers: bearer(user) }));
    check(
      'post',
      '/api/v1/sessions',
      await api(server, 'POST', '/api/v1/sessions', { headers: bearer(customer.token) }),
    );
    check(
      'post',
      '/api/v1/sessions/{id}/claim',
      await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/claim`, { headers: bearer(agent.token) }),
    );
    check(
      'post',
      '/api/v1/sessions/{id}/close',
      await api(server, 'POST', `/api/v1/sessions/${customer.sessionId}/close`, { headers: bearer(agent.token) }),
    );
    check(
      'get',
      '/api/v1/admin/connections',
      await api(server, 'GET', '/api/v1/admin/connections', { headers: admin }),
    );
    check('get', '/api/v1/admin/stats', await api(server, 'GET', '/api/v1/admin/stats', { headers: admin }));
    check('get', '/api/v1/admin/stats', await api(server, 'GET', '/api/v1/admin/stats'));
    check('get', '/api/v1/admin/app-keys', await api(server, 'GET', '/api/v1/admin/app-keys', { headers: admin }));
    check(
      'post',
      '/api/v1/admin/app-keys',
      await api(server, 'POST', '/api/v1/admin/app-keys', { headers: admin, body: { name: 'k' } }),
    );
    check(
      'post',
      '/api/v1/admin/agents',
      await api(server, 'POST', '/api/v1/admin/agents', {
        headers: admin,
        body: { username: 'oa-agent-2', password: 'long-password' },
      }),
    );
    for (const action of ['kick', 'revoke', 'block', 'unblock'])
      check(
        'post',
        `/api/v1/admin/principals/{id}/${action}`,
        await api(server, 'POST', `/api/v1/admin/principals/oa-2/${action}`, { headers: admin }),
      );
    check('get', '/healthz', await api(server, 'GET', '/healthz'));
    check('get', '/readyz', await api(server, 'GET', '/readyz'));
    assert.ok(checked.length >= 35, `${checked.length} answers checked`);
  });

  it('generates a typed client whose types compile and carry the documented shapes', async () => {
    const source = astToString(await openapiTS(doc));
    for (const path of ['/api/v1/public/customer-token', '/openapi/v1/user/login', '/api/v1/admin/connections'])
      assert.ok(source.includes(`"${path}"`), `the generated types list ${path}`);
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-openapi-'));
    try {
      writeFileSync(join(dir, 'gatehouse-api.ts'), source);
      writeFileSync(
        join(dir, 'client.ts'),
        `import type { paths } from './gatehouse-api';
type Json<P extends keyof paths, M extends keyof paths[P], S extends number> =
  paths[P][M] extends { responses: infer R } ? R extends Record<S, { content: { 'application/json': infer B } }> ? B : never : never;

export const customer: Json<'/api/v1/public/customer-token', 'post', 200> = {
  customerId: 'c', token: 't', refreshToken: 'r', sessionId: 's', expiresAt: 1,
};
type ImUser = Json<'/openapi/v1/user/login', 'post', 200>['data']['imUserVo'];
export const status: ImUser['userStatus'] = 1;
// @ts-expect-error userStatus is a number, as a client typed Integer reads it
export const wrongStatus: ImUser['userStatus'] = 'active';
export const ticket: Json<'/api/v1/ws-ticket', 'post', 200> = { ticket: 't', expiresIn: 30, expiresAt: 1 };
export const refresh: Json<'/api/refresh-token', 'post', 200> = {
  code: 200, body: { access_token: 'a', refresh_token: 'r', expires_at: 1 }, err_msg: '',
};
export const closed: Json<'/api/v1/admin/principals/{id}/kick', 'post', 200>['closed'] = 2;
export const node: Json<'/api/v1/admin/connections', 'get', 200>['connections'][number]['node'] = 'n1';
`,
      );
      const program = ts.createProgram([join(dir, 'client.ts')], {
        strict: true,
        noEmit: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        skipLibCheck: true,
      });
      const diagnostics = ts
        .getPreEmitDiagnostics(program)
        .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      assert.deepEqual(diagnostics, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
