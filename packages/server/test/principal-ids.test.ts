import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isWellFormedByRegex, isWellFormedText } from '../src/auth/well-formed-text.js';
import { signToken, userClaims, validate } from './helpers/auth-fixtures.js';
import { agentLogin, api, createAppKey, startServer, type TestServer, userToken } from './helpers/test-server.js';
import { Clients } from './helpers/ws-expect.js';

/**
 * Principal ids that are not well-formed Unicode (a lone surrogate, `"\ud800"` in JSON) are
 * stored by SQLite as U+FFFD, so the stored id differs from the token's `sub`: block, revoke,
 * kick and tenant checks keyed on one miss the other. Every entry refuses them.
 */

/** JSON text with a lone surrogate escaped (JSON.stringify escapes lone surrogates as \udXXX). */
const raw = (value: unknown): string => JSON.stringify(value);
const LONE = ['\ud800', 'x\udc00', '\udbffy', 'a\ud83d'];

describe('ill-formed (lone surrogate) ids are refused where they enter', () => {
  let server: TestServer;
  let appKey: string;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server, 'ids app');
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('open API: a user id with a lone surrogate gets 400 INVALID_REQUEST in the route shape', async () => {
    for (const id of LONE) {
      const res = await api(server, 'POST', '/openapi/v1/user/login', {
        headers: { 'x-app-key': appKey },
        rawBody: raw({ id, nickname: 'Lone', device: 'im_web' }),
      });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.code, 400);
      assert.equal(res.body.error, 'INVALID_REQUEST');
    }
  });

  it('REST: login, admin agents, group members, and any key or string in body, params or query get 400', async () => {
    const admin = { 'x-admin-key': server.adminKey };
    const cases: [string, string, string, Record<string, string>][] = [
      ['POST', '/api/v1/public/login', raw({ username: 'u\ud800', password: 'whatever-1' }), {}],
      ['POST', '/api/v1/admin/agents', raw({ username: 'agent', password: 'password-1', id: 'ag\udc00' }), admin],
      ['POST', '/api/v1/admin/agents', raw({ username: 'agent2', password: 'password-1', name: 'N\ud800' }), admin],
      ['POST', '/api/v1/conversations', raw({ kind: 'group', name: 'g', members: ['ok', 'm\ud800'] }), admin],
      ['POST', '/api/v1/public/customer-token', raw({ name: 'V', channel: 'web', '\ud800': 1 }), {}],
      ['POST', '/api/v1/admin/principals/p1/kick', raw({ deviceType: 'im\ud800' }), admin],
    ];
    for (const [method, path, body, headers] of cases) {
      const res = await api(server, method, path, { rawBody: body, headers });
      assert.equal(res.status, 400, `${path} ${body}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'INVALID_REQUEST', path);
    }
    // Percent-encoded surrogate halves (WTF-8) in a path or query never become a lone surrogate.
    for (const path of [
      '/api/v1/admin/principals/%ED%A0%80/block',
      '/api/v1/admin/principals/%ED%A0%80/revoke',
      '/api/v1/conversations/c1/members/%ED%A0%80',
    ]) {
      const res = await api(server, path.includes('members') ? 'DELETE' : 'POST', path, { headers: admin });
      assert.ok(res.status === 400 || res.status === 404, `${path}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  });

  it('frames: login username, message to and conversation_id, ack and history conversation_id', async () => {
    const anonymous = clients.connect(`${server.wsUrl}/`);
    await anonymous.next('connected');
    anonymous.send(`{"type":"login","id":"l1","username":${raw('u\ud800')},"password":"whatever-1"}`);
    const login = await anonymous.next((f) => f.id === 'l1');
    assert.equal(login.code, 400, JSON.stringify(login));
    assert.equal(login.error, 'INVALID_REQUEST');

    const token = await userToken(server, appKey, 'frames-sender');
    const socket = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
    await socket.next('connected');
    const frames: [string, string][] = [
      ['m1', `{"type":"message","id":"m1","to":${raw('bob\ud800')},"text":"hi"}`],
      ['m2', `{"type":"message","id":"m2","conversation_id":${raw('c\udc00')},"text":"hi"}`],
      ['m3', `{"type":"message","id":"m3","sessionId":${raw('\ud800')},"text":"hi"}`],
      ['a1', `{"type":"ack","id":"a1","conversation_id":${raw('c\ud800')},"seq":1}`],
      ['h1', `{"type":"history","id":"h1","conversation_id":${raw('c\ud800')}}`],
    ];
    for (const [id, frame] of frames) {
      socket.send(frame);
      const reply = await socket.next((f) => f.id === id);
      assert.equal(reply.code, 400, `${frame}: ${JSON.stringify(reply)}`);
      assert.equal(reply.error, 'INVALID_REQUEST', frame);
    }
  });

  it('AuthService entry points (used by the CLI `user add` and `token issue`) refuse them', async () => {
    const auth = server.gatehouse.services.auth;
    await assert.rejects(
      auth.createAccount({ kind: 'user', username: 'cli\ud800', password: 'password-1' }),
      (err: { code?: string }) => err.code === 'INVALID_REQUEST',
    );
    await assert.rejects(
      auth.createAccount({ kind: 'agent', username: 'cli-ok', id: 'cli\udc00', password: 'password-1' }),
      (err: { code?: string }) => err.code === 'INVALID_REQUEST',
    );
    await assert.rejects(
      auth.startSession({ id: 'tok\ud800', kind: 'user', name: 'x' }, {}),
      (err: { code?: string }) => err.code === 'INVALID_REQUEST',
    );
    assert.equal(await server.gatehouse.services.store.getPrincipal('cli\ufffd'), null, 'nothing was stored');
  });

  it('a token whose sub is ill-formed is refused, so a block of the stored id cannot be escaped', async () => {
    const token = await signToken(server, userClaims(server, { sub: 'esc\ud800' }));
    const check = await validate(server, token);
    assert.equal(check.body.valid, false);
    assert.equal(check.body.error, 'TOKEN_INVALID');
    const client = clients.connect(`${server.wsUrl}/ws`, { headers: { authorization: `Bearer ${token}` } });
    const rejection = await client.rejection;
    client.ws.terminate();
    assert.equal(rejection.status, 401);
    assert.equal(rejection.body.error, 'TOKEN_INVALID');
  });

  it('keeps well-formed non-ASCII ids working (astral characters, U+FFFD itself)', async () => {
    const agent = await agentLogin(server, 'ok-agent');
    assert.equal(typeof agent.token, 'string');
    const res = await api(server, 'POST', '/openapi/v1/user/login', {
      headers: { 'x-app-key': appKey },
      body: { id: 'émoji-😀-\ufffd', nickname: 'Ünïcode 😀', device: 'im_web' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.data.imUserVo.id, 'émoji-😀-\ufffd');
  });
});

describe('isWellFormedText', () => {
  it('agrees with String.prototype.isWellFormed, and so does the regex fallback', () => {
    const native = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
    assert.equal(typeof native, 'function', 'Node 20+ has isWellFormed');
    // Pieces of any code point, and single UTF-16 units from the surrogate range (paired or lone).
    const text = fc
      .array(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 3 }),
          fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
        ),
        { maxLength: 8 },
      )
      .map((pieces) => pieces.join(''));
    let illFormed = 0;
    fc.assert(
      fc.property(text, (s) => {
        const expected = native?.call(s) as boolean;
        if (!expected) illFormed++;
        assert.equal(isWellFormedText(s), expected, JSON.stringify(s));
        assert.equal(isWellFormedByRegex(s), expected, JSON.stringify(s));
      }),
      { numRuns: 3000 },
    );
    assert.ok(illFormed > 300 && illFormed < 2900, `both kinds were generated (${illFormed} ill-formed)`);
  });
});
