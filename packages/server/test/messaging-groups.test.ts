import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Clients, imUsers, sendMessage, sendOk } from './helpers/messaging.js';
import { agentLogin, api, startServer, type TestServer } from './helpers/test-server.js';

describe('groups', () => {
  let server: TestServer;
  const clients = new Clients();
  let run = 0;

  /** Users of one new app, with fresh ids for each test. */
  async function app(...names: string[]) {
    run++;
    const ids = names.map((n) => `${n}-${run}`);
    const { appKey, tokens } = await imUsers(server, ids);
    return { appKey, ids, tokens: ids.map((id) => tokens[id] as string) };
  }

  const post = (path: string, headers: Record<string, string>, body: unknown) =>
    api(server, 'POST', path, { headers, body });

  before(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  after(() => server.close());

  it('takes a member list as long as the schema allows, beyond the default 64 KiB body limit', async () => {
    const admin = { 'x-admin-key': server.adminKey };
    // 10,000 ids of 120 characters: about 1.2 MB, read in full and checked (unknown members: 400).
    const longest = Array.from({ length: 10_000 }, (_, i) => `m-${String(i).padStart(117, '0')}`);
    const full = await post('/api/v1/conversations', admin, { kind: 'group', name: 'big', members: longest });
    assert.equal(full.status, 400, JSON.stringify(full.body).slice(0, 200));
    assert.match(full.body.message, /unknown members/);
    const added = await post('/api/v1/conversations/gr_none/members', admin, { members: longest });
    assert.notEqual(added.status, 413, 'the member route takes it too');
    // One more than the schema allows is a 400, and a body beyond any list it allows a 413.
    const tooMany = await post('/api/v1/conversations', admin, {
      kind: 'group',
      name: 'big',
      members: [...longest, 'one-more'],
    });
    assert.equal(tooMany.status, 400);
    const huge = await api(server, 'POST', '/api/v1/conversations', {
      headers: admin,
      rawBody: JSON.stringify({ kind: 'group', name: 'x'.repeat(2_000_000), members: ['a'] }),
    });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error, 'PAYLOAD_TOO_LARGE');
  });

  it("creates a group with an app key from that app's users only", async () => {
    const {
      appKey,
      ids: [a1, a2],
      tokens: [a1Token, a2Token],
    } = await app('a1', 'a2');
    const other = await app('b1');

    const created = await post(
      '/api/v1/conversations',
      { 'x-app-key': appKey },
      {
        kind: 'group',
        name: 'team',
        members: [a2, a1, a1],
      },
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.id, /^gr_/);
    assert.equal(created.body.kind, 'group');
    assert.equal(created.body.name, 'team');
    assert.deepEqual(created.body.members, [a1, a2].sort());

    const foreign = await post(
      '/api/v1/conversations',
      { 'x-app-key': appKey },
      {
        kind: 'group',
        name: 'mixed',
        members: [a1, other.ids[0]],
      },
    );
    assert.equal(foreign.status, 400);
    assert.equal(foreign.body.error, 'INVALID_REQUEST');
    assert.match(foreign.body.message, new RegExp(other.ids[0] as string));

    const unknown = await post(
      '/api/v1/conversations',
      { 'x-app-key': appKey },
      {
        kind: 'group',
        name: 'ghosts',
        members: [a1, `ghost-${run}`],
      },
    );
    assert.equal(unknown.status, 400);

    const noKey = await post('/api/v1/conversations', {}, { kind: 'group', name: 'x', members: [a1] });
    assert.equal(noKey.status, 401);
    const wrongKey = await post(
      '/api/v1/conversations',
      { 'x-app-key': 'gak_wrong' },
      {
        kind: 'group',
        name: 'x',
        members: [a1],
      },
    );
    assert.equal(wrongKey.status, 401);
    const wrongAdmin = await post(
      '/api/v1/conversations',
      { 'x-admin-key': 'wrong' },
      {
        kind: 'group',
        name: 'x',
        members: [a1],
      },
    );
    assert.equal(wrongAdmin.status, 401);

    // Its members write and read it.
    const m1 = await clients.device(server, '/ws', a1Token as string);
    const m2 = await clients.device(server, '/ws', a2Token as string);
    const ack = await sendOk(m1.client, { conversation_id: created.body.id, text: 'hello team' });
    assert.equal(ack.seq, 1);
    const event = await m2.client.next('message');
    assert.equal(event.message.conversation_id, created.body.id);
    assert.equal(event.message.text, 'hello team');
    const list = await api(server, 'GET', '/api/v1/conversations', { headers: { authorization: `Bearer ${a2Token}` } });
    const listed = list.body.conversations.find((c: { id: string }) => c.id === created.body.id);
    assert.equal(listed?.kind, 'group');
    assert.equal(listed?.name, 'team');
  });

  it('creates a group with the admin key from principals of any app and kind', async () => {
    const first = await app('u1');
    const second = await app('u2');
    const agent = await agentLogin(server, `agent-${run}`);
    const created = await post(
      '/api/v1/conversations',
      { 'x-admin-key': server.adminKey },
      {
        kind: 'group',
        name: 'everyone',
        members: [first.ids[0], second.ids[0], agent.user.id],
      },
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.members, [first.ids[0], second.ids[0], agent.user.id].sort());

    const agentSocket = await clients.device(server, '/ws/chat', agent.token);
    const user = await clients.device(server, '/ws', second.tokens[0] as string);
    await sendOk(agentSocket.client, { conversation_id: created.body.id, text: 'from the agent' });
    assert.equal((await user.client.next('message')).message.from.kind, 'agent');
  });

  it('adds members who can then send and read, and removes members who then get NOT_MEMBER', async () => {
    const {
      appKey,
      ids: [a1, a2, a3],
      tokens: [a1Token, a2Token, a3Token],
    } = await app('a1', 'a2', 'a3');
    const created = await post(
      '/api/v1/conversations',
      { 'x-app-key': appKey },
      {
        kind: 'group',
        name: 'growing',
        members: [a1, a2],
      },
    );
    const groupId = created.body.id as string;
    const m1 = await clients.device(server, '/ws', a1Token as string);
    const m2 = await clients.device(server, '/ws', a2Token as string);
    const m3 = await clients.device(server, '/ws', a3Token as string);
    await sendOk(m1.client, { conversation_id: groupId, text: 'before a3' });
    await m2.client.next('message');

    const refusedBefore = await sendMessage(m3.client, { conversation_id: groupId, text: 'knock knock' });
    assert.equal(refusedBefore.error, 'NOT_MEMBER');

    const added = await post(`/api/v1/conversations/${groupId}/members`, { 'x-app-key': appKey }, { members: [a3] });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.deepEqual(added.body.members, [a1, a2, a3].sort());

    // The new member sends, everyone gets it; it reads the history from before it joined.
    const fromA3 = await sendOk(m3.client, { conversation_id: groupId, text: 'hi, I am new' });
    assert.equal(fromA3.seq, 2);
    assert.equal((await m1.client.next('message')).message.text, 'hi, I am new');
    assert.equal((await m2.client.next('message')).message.text, 'hi, I am new');
    const history = await m3.client.request({ type: 'history', conversation_id: groupId });
    assert.deepEqual(
      history.body.messages.map((m: { text: string }) => m.text),
      ['before a3', 'hi, I am new'],
    );
    // Its live socket now receives the group's messages.
    await sendOk(m1.client, { conversation_id: groupId, text: 'welcome' });
    assert.equal((await m3.client.next('message')).message.text, 'welcome');
    assert.equal((await m2.client.next('message')).message.text, 'welcome');

    const removed = await api(server, 'DELETE', `/api/v1/conversations/${groupId}/members/${a2}`, {
      headers: { 'x-app-key': appKey },
    });
    assert.equal(removed.status, 204);

    const send = await sendMessage(m2.client, { conversation_id: groupId, text: 'am I still here?' });
    assert.equal(send.code, 403);
    assert.equal(send.error, 'NOT_MEMBER');
    const read = await m2.client.request({ type: 'history', conversation_id: groupId });
    assert.equal(read.error, 'NOT_MEMBER');
    const rest = await api(server, 'GET', `/api/v1/conversations/${groupId}/messages`, {
      headers: { authorization: `Bearer ${a2Token}` },
    });
    assert.equal(rest.status, 403);
    assert.equal(rest.body.error, 'NOT_MEMBER');

    // The removed member no longer receives the group's messages: the next event it gets is
    // a direct message sent after the group message.
    await sendOk(m1.client, { conversation_id: groupId, text: 'after a2 left' });
    await sendOk(m1.client, { to: a2, text: 'marker' });
    const next = await m2.client.next('message');
    assert.equal(next.message.text, 'marker');
    assert.equal((await m3.client.next('message')).message.text, 'after a2 left');

    const again = await api(server, 'DELETE', `/api/v1/conversations/${groupId}/members/${a2}`, {
      headers: { 'x-app-key': appKey },
    });
    assert.equal(again.status, 404);
  });

  it('lets only an app whose users make up the group, or the admin, manage it', async () => {
    const {
      appKey,
      ids: [a1, a2],
    } = await app('a1', 'a2');
    const other = await app('b1');
    const created = await post(
      '/api/v1/conversations',
      { 'x-app-key': appKey },
      {
        kind: 'group',
        name: 'ours',
        members: [a1],
      },
    );
    const groupId = created.body.id as string;

    const byOtherApp = await post(
      `/api/v1/conversations/${groupId}/members`,
      { 'x-app-key': other.appKey },
      {
        members: [other.ids[0]],
      },
    );
    assert.equal(byOtherApp.status, 403);
    assert.equal(byOtherApp.body.error, 'FORBIDDEN');
    const removeByOtherApp = await api(server, 'DELETE', `/api/v1/conversations/${groupId}/members/${a1}`, {
      headers: { 'x-app-key': other.appKey },
    });
    assert.equal(removeByOtherApp.status, 403);

    const foreignMember = await post(
      `/api/v1/conversations/${groupId}/members`,
      { 'x-app-key': appKey },
      {
        members: [other.ids[0]],
      },
    );
    assert.equal(foreignMember.status, 400);

    const byAdmin = await post(
      `/api/v1/conversations/${groupId}/members`,
      { 'x-admin-key': server.adminKey },
      {
        members: [a2],
      },
    );
    assert.equal(byAdmin.status, 200);
    assert.deepEqual(byAdmin.body.members, [a1, a2].sort());

    const notAGroup = await post(
      '/api/v1/conversations/gr_missing/members',
      { 'x-admin-key': server.adminKey },
      {
        members: [a2],
      },
    );
    assert.equal(notAGroup.status, 404);
  });
  it('keeps a group with the app that created it, also once that app emptied it', async () => {
    const owner = await app('o1');
    const intruder = await app('i1');
    const created = await post(
      '/api/v1/conversations',
      { 'x-app-key': owner.appKey },
      { kind: 'group', name: 'soon empty', members: [owner.ids[0]] },
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const groupId = created.body.id as string;
    const emptied = await api(server, 'DELETE', `/api/v1/conversations/${groupId}/members/${owner.ids[0]}`, {
      headers: { 'x-app-key': owner.appKey },
    });
    assert.equal(emptied.status, 204);

    // Every member of the empty group (none) is the other app's user: still not its group.
    const takeover = await post(
      `/api/v1/conversations/${groupId}/members`,
      { 'x-app-key': intruder.appKey },
      { members: [intruder.ids[0]] },
    );
    assert.equal(takeover.status, 403, JSON.stringify(takeover.body));
    assert.equal(takeover.body.error, 'FORBIDDEN');
    const intruderSocket = await clients.device(server, '/ws', intruder.tokens[0] as string);
    const refused = await sendMessage(intruderSocket.client, { conversation_id: groupId, text: 'mine now' });
    assert.equal(refused.error, 'NOT_MEMBER');

    // The owner refills it.
    const refilled = await post(
      `/api/v1/conversations/${groupId}/members`,
      { 'x-app-key': owner.appKey },
      { members: [owner.ids[0]] },
    );
    assert.equal(refilled.status, 200, JSON.stringify(refilled.body));
    assert.deepEqual(refilled.body.members, [owner.ids[0]]);
  });

  it("leaves a group the admin created to the admin, even when all its members are one app's users", async () => {
    const owner = await app('m1');
    const created = await post(
      '/api/v1/conversations',
      { 'x-admin-key': server.adminKey },
      { kind: 'group', name: 'admin made', members: [owner.ids[0]] },
    );
    assert.equal(created.status, 201);
    const byApp = await post(
      `/api/v1/conversations/${created.body.id}/members`,
      { 'x-app-key': owner.appKey },
      { members: [owner.ids[0]] },
    );
    assert.equal(byApp.status, 403);
  });
});
