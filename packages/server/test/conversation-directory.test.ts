import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConversationDirectory } from '../src/messaging/conversation-directory.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import type { Store } from '../src/store/store.js';

/*
 * The conversation cache on a real SQLite store: a load under way is shared, and a change
 * made while a load is under way is never hidden by that load's (older) result.
 */

describe('ConversationDirectory', () => {
  let dir: string;
  let store: SqliteStore;
  /** Member-list reads that reached the store. */
  let memberReads = 0;
  /** The real store, counting its member-list reads. */
  let counted: Store;
  let n = 0;

  async function group(members: string[]): Promise<string> {
    const id = `gr_test_${++n}`;
    for (const member of members)
      await store.createPrincipal({
        id: member,
        kind: 'user',
        name: member,
        passwordHash: null,
        appKeyId: null,
        avatar: null,
        extras: null,
        tokenVersion: 0,
        blocked: false,
        createdAt: 0,
        lastLoginAt: null,
      });
    await store.createConversation(
      {
        id,
        kind: 'group',
        name: id,
        lastSeq: 0,
        createdAt: 0,
        customerId: null,
        agentId: null,
        status: null,
        appKeyId: null,
        waitingSince: null,
      },
      members,
    );
    return id;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-directory-'));
    store = new SqliteStore(join(dir, 'gatehouse.db'));
    await store.migrate();
    counted = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'members')
          return (id: string) => {
            memberReads++;
            return target.members(id);
          };
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the member list of a group once for a burst of gets, and not again while cached', async () => {
    const members = Array.from({ length: 1000 }, (_, i) => `burst-${i}`);
    const id = await group(members);
    const directory = new ConversationDirectory(counted);
    memberReads = 0;
    const entries = await Promise.all(Array.from({ length: 10 }, () => directory.get(id)));
    assert.equal(memberReads, 1);
    for (const entry of entries) assert.equal(entry, entries[0], 'every get of the burst has the same entry');
    assert.equal(entries[0]?.memberList.length, 1000);
    assert.ok(Object.isFrozen(entries[0]?.memberList), 'the member list cannot be changed by a caller');
    await directory.get(id);
    assert.equal(memberReads, 1);
  });

  it('does not keep a load that was under way when its conversation changed', async () => {
    const id = await group(['stay-1', 'leave-1']);
    const directory = new ConversationDirectory(counted);
    memberReads = 0;
    const underWay = directory.get(id);
    // The change is committed and announced while the load is under way.
    assert.equal(await store.removeMember(id, 'leave-1'), true);
    directory.invalidate(id);
    await underWay;
    const next = await directory.get(id);
    assert.equal(memberReads, 2, 'the next get loads again');
    assert.deepEqual(next?.memberList, ['stay-1']);
    assert.equal(next?.members.has('leave-1'), false);
  });

  it('loads again after an invalidation and after clear, also for loads under way at clear', async () => {
    const id = await group(['one-1']);
    const directory = new ConversationDirectory(counted);
    await directory.get(id);
    await store.addMembers(id, ['two-1']);
    assert.deepEqual((await directory.get(id))?.memberList, ['one-1'], 'cached until told');
    directory.invalidate(id);
    assert.deepEqual((await directory.get(id))?.memberList, ['one-1', 'two-1']);

    const underWay = directory.get(`${id}-missing`);
    await store.addMembers(id, ['three-1']);
    const stale = directory.get(id);
    directory.clear();
    assert.equal(await underWay, null);
    await stale;
    assert.deepEqual((await directory.get(id))?.memberList, ['one-1', 'three-1', 'two-1']);
  });

  it('answers null for an unknown conversation without keeping the answer', async () => {
    const directory = new ConversationDirectory(counted);
    const id = `gr_test_${n + 1}`;
    assert.equal(await directory.get(id), null);
    assert.equal(await group(['late-1']), id, 'created after the miss');
    assert.deepEqual((await directory.get(id))?.memberList, ['late-1']);
  });
});
