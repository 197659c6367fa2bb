import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, createAppKey, startServer, type TestServer } from './helpers/test-server.js';

/**
 * The open-API login answer read the way a typed client reads it (a Java `Integer userStatus`,
 * a `Map extras`): the values' types, not today's server output.
 */
interface ImUserVo {
  id: string;
  nickname: string;
  avatar: string | null;
  userStatus: number;
  lastLoginTime: number;
  extras: Record<string, unknown>;
}

function parseImUserVo(value: unknown): ImUserVo {
  const v = value as Record<string, unknown>;
  if (!Number.isInteger(v.userStatus))
    throw new TypeError(`userStatus is not an Integer: ${JSON.stringify(v.userStatus)}`);
  if (!v.extras || typeof v.extras !== 'object' || Array.isArray(v.extras))
    throw new TypeError(`extras is not an object: ${JSON.stringify(v.extras)}`);
  return v as unknown as ImUserVo;
}

describe('the open API login answers userStatus as a number and extras as an object', () => {
  let server: TestServer;
  let appKey: string;
  before(async () => {
    server = await startServer();
    appKey = await createAppKey(server, 'typed client app');
  });
  after(() => server.close());

  const login = (body: Record<string, unknown>) =>
    api(server, 'POST', '/openapi/v1/user/login', { headers: { 'x-app-key': appKey }, body });

  it('gives userStatus 1 (normal) and extras {} when none were given', async () => {
    const res = await login({ id: 'typed-1', nickname: 'Typed', device: 'im_web' });
    assert.equal(res.status, 200);
    const user = parseImUserVo(res.body.data.imUserVo);
    assert.equal(user.userStatus, 1);
    assert.deepEqual(user.extras, {});
  });

  it('keeps the extras that were given', async () => {
    const res = await login({ id: 'typed-2', nickname: 'Typed', device: 'im_web', extras: { vip: true } });
    assert.equal(res.status, 200);
    const user = parseImUserVo(res.body.data.imUserVo);
    assert.equal(user.userStatus, 1);
    assert.deepEqual(user.extras, { vip: true });
  });
});
