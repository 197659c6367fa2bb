import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RevocationCache } from '../src/auth/revocation-cache.js';
import { ManualClock } from '../src/clock.js';
import { SqliteStore } from '../src/store/sqlite-store.js';

/*
 * The revocation cache on a real SQLite store and a ManualClock: entries expire after the
 * configured lifetime (no sleeping), and what it learns from events is monotonic.
 */

const TTL = 5000;

describe('RevocationCache', () => {
  let dir: string;
  let store: SqliteStore;
  const clock = new ManualClock();
  let cache: RevocationCache;
  let n = 0;
  const principal = async () => {
    const id = `p${++n}`;
    await store.createPrincipal({
      id,
      kind: 'user',
      name: id,
      passwordHash: null,
      appKeyId: null,
      avatar: null,
      extras: null,
      tokenVersion: 0,
      blocked: false,
      createdAt: clock.now(),
      lastLoginAt: null,
    });
    await store.createLoginSession({
      sid: `${id}-s`,
      principalId: id,
      kind: 'user',
      deviceType: null,
      deviceId: null,
      createdAt: clock.now(),
      revokedAt: null,
    });
    return { id, sid: `${id}-s` };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-revocations-'));
    store = new SqliteStore(join(dir, 'gatehouse.db'));
    await store.migrate();
    cache = new RevocationCache(store, clock, TTL);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a change it was not told about from the store once its entry is older than the lifetime', async () => {
    const { id, sid } = await principal();
    assert.deepEqual(await cache.principal(id), { tokenVersion: 0, blocked: false });
    assert.equal(await cache.sessionRevoked(sid), false);
    // Another node blocks the principal and logs the session out; no event reaches this cache.
    await store.setBlocked(id, true);
    await store.revokeLoginSession(sid, clock.now());
    clock.advance(TTL - 1);
    assert.deepEqual(await cache.principal(id), { tokenVersion: 0, blocked: false }, 'still within the lifetime');
    assert.equal(await cache.sessionRevoked(sid), false);
    clock.advance(1);
    assert.deepEqual(await cache.principal(id), { tokenVersion: 0, blocked: true });
    assert.equal(await cache.sessionRevoked(sid), true);
  });

  it('check() reads both answers in one store read when neither is cached, and only the missing one otherwise', async () => {
    const reads: string[] = [];
    const counting = new RevocationCache(
      {
        getPrincipal: (key) => {
          reads.push('principal');
          return store.getPrincipal(key);
        },
        getLoginSession: (key) => {
          reads.push('session');
          return store.getLoginSession(key);
        },
        revocationState: (principalId, sessionId) => {
          reads.push('both');
          return store.revocationState(principalId, sessionId);
        },
      },
      clock,
      TTL,
    );
    const { id, sid } = await principal();
    await store.bumpTokenVersion(id, clock.now());
    assert.deepEqual(await counting.check(id, sid), {
      principal: { tokenVersion: 1, blocked: false },
      sessionRevoked: true,
    });
    assert.deepEqual(reads, ['both']);
    assert.deepEqual(await counting.check(id, sid), {
      principal: { tokenVersion: 1, blocked: false },
      sessionRevoked: true,
    });
    assert.deepEqual(reads, ['both'], 'both cached');
    const newSession = `${id}-s2`;
    assert.deepEqual(await counting.check(id, newSession), {
      principal: { tokenVersion: 1, blocked: false },
      sessionRevoked: false,
    });
    assert.deepEqual(reads, ['both', 'session'], 'the principal came from the cache');
    assert.deepEqual(await counting.check('never-stored', 'nor-this'), {
      principal: { tokenVersion: 0, blocked: false },
      sessionRevoked: false,
    });
    assert.deepEqual(reads, ['both', 'session', 'both']);
  });

  it('never lowers a token version: a late event of an older version changes nothing', async () => {
    const { id } = await principal();
    cache.setPrincipal(id, { tokenVersion: 3, blocked: false });
    cache.setPrincipal(id, { tokenVersion: 2, blocked: true });
    assert.deepEqual(await cache.principal(id), { tokenVersion: 3, blocked: false });
  });

  it('keeps a block or logout that arrives while a store read is under way, against that older read', async () => {
    const { id, sid } = await principal();
    // The store answers only when the test lets it: the event lands between the read and its answer.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const slow = new RevocationCache(
      {
        getPrincipal: async (key) => {
          const record = await store.getPrincipal(key);
          await gate;
          return record;
        },
        getLoginSession: async (key) => {
          const record = await store.getLoginSession(key);
          await gate;
          return record;
        },
        revocationState: async (principalId, sessionId) => {
          const state = await store.revocationState(principalId, sessionId);
          await gate;
          return state;
        },
      },
      clock,
      TTL,
    );
    const other = await principal();
    const reading = slow.principal(id);
    const readingSession = slow.sessionRevoked(sid);
    const readingBoth = slow.check(other.id, other.sid);
    await new Promise((resolve) => setImmediate(resolve));
    slow.setPrincipal(id, { tokenVersion: 0, blocked: true });
    slow.markSessionRevoked(sid);
    slow.setPrincipal(other.id, { tokenVersion: 0, blocked: true });
    slow.markSessionRevoked(other.sid);
    open();
    assert.deepEqual(await reading, { tokenVersion: 0, blocked: true });
    assert.equal(await readingSession, true);
    assert.deepEqual(await readingBoth, { principal: { tokenVersion: 0, blocked: true }, sessionRevoked: true });
    assert.deepEqual(await slow.principal(id), { tokenVersion: 0, blocked: true });
    assert.equal(await slow.sessionRevoked(sid), true);
    slow.setPrincipal(id, { tokenVersion: 0, blocked: false });
    assert.equal((await slow.principal(id)).blocked, false, 'the unblock event itself applies');
  });

  it('keeps a revoked session revoked: past the lifetime, and after the caches are dropped', async () => {
    const { sid } = await principal();
    assert.equal(await cache.sessionRevoked(sid), false);
    cache.markSessionRevoked(sid);
    clock.advance(10 * TTL);
    assert.equal(await cache.sessionRevoked(sid), true, 'the store never saw the logout, the event stays');
    cache.clear();
    assert.equal(await cache.sessionRevoked(sid), true);
  });

  it('re-reads every principal after clear()', async () => {
    const { id } = await principal();
    assert.equal((await cache.principal(id)).tokenVersion, 0);
    await store.bumpTokenVersion(id, clock.now());
    assert.equal((await cache.principal(id)).tokenVersion, 0, 'cached');
    cache.clear();
    assert.equal((await cache.principal(id)).tokenVersion, 1);
  });
});
