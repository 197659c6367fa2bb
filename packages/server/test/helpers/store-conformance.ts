import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { PrincipalKind } from '@gatehouse/protocol';
import type {
  ConversationRecord,
  LoginSessionRecord,
  MessageRecord,
  NewMessage,
  PrincipalRecord,
  RefreshTokenRecord,
  Store,
  TicketRecord,
} from '../../src/store/store.js';

/** A migrated, empty store, and a way to open more handles on the same data (as other nodes would). */
export interface StoreFixture {
  store: Store;
  /** Another store on the same database with its own connections; closed by `cleanup`. */
  openPeer(): Promise<Store>;
  /** Closes the stores and deletes the database. */
  cleanup(): Promise<void>;
}

export type StoreFactory = () => Promise<StoreFixture>;

/** Test context of one area: a fresh store for that area's tests. */
interface Context {
  readonly store: Store;
  /** `n` stores on the same data: index 0 is `store`, the rest are peers (other "nodes"). */
  nodes(n: number): Promise<Store[]>;
}

/** Registers before/after hooks that give the enclosing describe a fresh store. */
function useStore(factory: StoreFactory): Context {
  let fixture: StoreFixture | null = null;
  const peers: Store[] = [];
  before(async () => {
    fixture = await factory();
  });
  after(async () => {
    await fixture?.cleanup();
  });
  return {
    get store() {
      if (!fixture) throw new Error('the store fixture is not ready');
      return fixture.store;
    },
    async nodes(n: number) {
      if (!fixture) throw new Error('the store fixture is not ready');
      while (peers.length < n - 1) peers.push(await fixture.openPeer());
      return [fixture.store, ...peers.slice(0, n - 1)];
    },
  };
}

let counter = 0;
/** An id no other test of the run uses. */
const uid = (prefix: string) => `${prefix}-${++counter}-${randomUUID().slice(0, 8)}`;

const T0 = 1_700_000_000_000;

function principal(kind: PrincipalKind, overrides: Partial<PrincipalRecord> = {}): PrincipalRecord {
  return {
    id: uid(kind),
    kind,
    name: `A ${kind}`,
    passwordHash: null,
    appKeyId: null,
    avatar: null,
    extras: null,
    tokenVersion: 0,
    blocked: false,
    createdAt: T0,
    lastLoginAt: null,
    ...overrides,
  };
}

function conversation(
  kind: ConversationRecord['kind'],
  overrides: Partial<ConversationRecord> = {},
): ConversationRecord {
  return {
    id: uid(kind),
    kind,
    name: kind === 'group' ? 'A group' : null,
    lastSeq: 0,
    createdAt: T0,
    customerId: null,
    agentId: null,
    status: null,
    appKeyId: null,
    waitingSince: null,
    ...overrides,
  };
}

function supportSession(customerId: string, overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  return conversation('support', { customerId, status: 'open', ...overrides });
}

/** A message whose serialized body carries the seq the store assigned. */
function message(
  conversationId: string,
  fromId: string,
  options: {
    clientMsgId?: string | null;
    text?: string;
    ts?: number;
    createDirect?: [string, string];
    fromDevice?: string | null;
  } = {},
): NewMessage {
  const id = uid('msg');
  const ts = options.ts ?? T0;
  const text = options.text ?? 'hello';
  return {
    id,
    conversationId,
    fromId,
    fromDevice: options.fromDevice ?? null,
    clientMsgId: options.clientMsgId ?? null,
    ts,
    serialize: (seq) => JSON.stringify({ id, conversation_id: conversationId, seq, from: fromId, text, ts }),
    ...(options.createDirect ? { createDirect: { members: options.createDirect } } : {}),
  };
}

const seqsOf = (records: MessageRecord[]) => records.map((r) => r.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function refreshToken(
  sid: string,
  principalId: string,
  overrides: Partial<RefreshTokenRecord> = {},
): RefreshTokenRecord {
  return {
    hash: uid('hash'),
    familyId: sid,
    sid,
    principalId,
    kind: 'user',
    deviceType: 'im_web',
    deviceId: 'device-1',
    createdAt: T0,
    expiresAt: T0 + 60_000,
    usedAt: null,
    ...overrides,
  };
}

function loginSession(principalId: string, overrides: Partial<LoginSessionRecord> = {}): LoginSessionRecord {
  return {
    sid: uid('sid'),
    principalId,
    kind: 'user',
    deviceType: 'im_web',
    deviceId: 'device-1',
    createdAt: T0,
    revokedAt: null,
    ...overrides,
  };
}

function ticket(overrides: Partial<TicketRecord> = {}): TicketRecord {
  return {
    hash: uid('ticket'),
    principalId: 'alice',
    kind: 'user',
    name: 'Alice',
    sid: uid('sid'),
    tokenVersion: 3,
    deviceType: 'im_android',
    deviceId: 'phone-1',
    tokenExpiresAt: T0 + 3_600_000,
    expiresAt: T0 + 30_000,
    ...overrides,
  };
}

/** Runs `count` calls spread round-robin over `stores`, all started before any is awaited. */
/** Presents a refresh token: rotates it to a fresh successor hash, with the given grace (default none). */
const use = (store: Store, hash: string, now: number, graceMs = 0) =>
  store.rotateRefreshToken(hash, uid('hash'), now, graceMs);

function concurrently<T>(stores: Store[], count: number, call: (store: Store, i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => call(stores[i % stores.length] as Store, i)));
}

/**
 * The Store contract of src/store/store.ts as tests: every implementation must pass all of
 * them. Each area gets a fresh store; concurrency tests use several handles on the same
 * data (`openPeer`), the way several nodes share one database.
 */
export function storeConformance(name: string, factory: StoreFactory, options: { skip?: string } = {}): void {
  describe(name, options.skip ? { skip: options.skip } : {}, () => {
    // One store for the areas whose tests only touch their own ids; areas that read global lists get their own.
    const shared = useStore(factory);

    describe('principals', () => {
      const ctx = shared;

      it('creates a principal and reads every field back', async () => {
        const p = principal('agent', {
          name: 'Ada',
          passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$abc$def',
          avatar: 'https://example.com/a.png',
          extras: { team: 'blue', level: 3, tags: ['a', 'b'], nested: { ok: true, none: null } },
          tokenVersion: 2,
          lastLoginAt: T0 + 5,
        });
        assert.equal(await ctx.store.createPrincipal(p), true);
        assert.deepEqual(await ctx.store.getPrincipal(p.id), p);
      });

      it('keeps extras of every JSON shape, and null as null', async () => {
        for (const extras of [[1, 'two', { three: 3 }], 'a string', 42, true, null, { emoji: 'é漢😀' }]) {
          const p = principal('user', { extras });
          await ctx.store.createPrincipal(p);
          assert.deepEqual((await ctx.store.getPrincipal(p.id))?.extras, extras);
        }
      });

      it('answers null for an unknown principal', async () => {
        assert.equal(await ctx.store.getPrincipal(uid('nobody')), null);
      });

      it('refuses an id that is taken, by any kind, and changes nothing', async () => {
        const p = principal('agent', { name: 'First' });
        assert.equal(await ctx.store.createPrincipal(p), true);
        assert.equal(await ctx.store.createPrincipal({ ...p, name: 'Second' }), false);
        assert.equal(await ctx.store.createPrincipal({ ...p, kind: 'customer', name: 'Third' }), false);
        assert.deepEqual(await ctx.store.getPrincipal(p.id), p);
      });

      it('gives a taken id to exactly one of several nodes creating it concurrently', async () => {
        const nodes = await ctx.nodes(3);
        const id = uid('contested');
        const results = await concurrently(nodes, 9, (store, i) =>
          store.createPrincipal(principal('agent', { id, name: `Node ${i}` })),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = results.indexOf(true);
        assert.equal((await ctx.store.getPrincipal(id))?.name, `Node ${winner}`);
      });

      it("upsertAppUser creates an app's user, then updates name, avatar, extras and last login", async () => {
        const id = uid('appuser');
        const created = await ctx.store.upsertAppUser(
          'app-1',
          { id, name: 'Bob', avatar: null, extras: { plan: 'free' } },
          T0 + 1,
        );
        assert.deepEqual(created, {
          id,
          kind: 'user',
          name: 'Bob',
          passwordHash: null,
          appKeyId: 'app-1',
          avatar: null,
          extras: { plan: 'free' },
          tokenVersion: 0,
          blocked: false,
          createdAt: T0 + 1,
          lastLoginAt: T0 + 1,
        });
        await ctx.store.bumpTokenVersion(id, T0);
        await ctx.store.setBlocked(id, true);
        const updated = await ctx.store.upsertAppUser(
          'app-1',
          { id, name: 'Bobby', avatar: 'https://example.com/b.png', extras: null },
          T0 + 2,
        );
        assert.deepEqual(updated, {
          id,
          kind: 'user',
          name: 'Bobby',
          passwordHash: null,
          appKeyId: 'app-1',
          avatar: 'https://example.com/b.png',
          extras: null,
          tokenVersion: 1,
          blocked: true,
          createdAt: T0 + 1,
          lastLoginAt: T0 + 2,
        });
        assert.deepEqual(await ctx.store.getPrincipal(id), updated);
      });

      it('upsertAppUser answers conflict for an id of another app or another kind, and changes nothing', async () => {
        const id = uid('appuser');
        const original = await ctx.store.upsertAppUser('app-1', { id, name: 'Carol', avatar: null, extras: null }, T0);
        assert.equal(
          await ctx.store.upsertAppUser('app-2', { id, name: 'Mallory', avatar: 'x', extras: { x: 1 } }, T0 + 1),
          'conflict',
        );
        assert.deepEqual(await ctx.store.getPrincipal(id), original);

        const agent = principal('agent');
        await ctx.store.createPrincipal(agent);
        assert.equal(
          await ctx.store.upsertAppUser('app-1', { id: agent.id, name: 'Mallory', avatar: null, extras: null }, T0),
          'conflict',
        );
        const passwordUser = principal('user', { passwordHash: 'hash' });
        await ctx.store.createPrincipal(passwordUser);
        assert.equal(
          await ctx.store.upsertAppUser(
            'app-1',
            { id: passwordUser.id, name: 'Mallory', avatar: null, extras: null },
            T0,
          ),
          'conflict',
        );
        assert.deepEqual(await ctx.store.getPrincipal(agent.id), agent);
        assert.deepEqual(await ctx.store.getPrincipal(passwordUser.id), passwordUser);
      });

      it('upsertAppUser gives a new id to one app when two apps upsert it concurrently from several nodes', async () => {
        const nodes = await ctx.nodes(3);
        const id = uid('appuser');
        const results = await concurrently(nodes, 12, (store, i) =>
          store.upsertAppUser(
            i % 2 === 0 ? 'app-even' : 'app-odd',
            { id, name: `N${i}`, avatar: null, extras: null },
            T0,
          ),
        );
        const owners = new Set(results.filter((r) => r !== 'conflict').map((r) => (r as PrincipalRecord).appKeyId));
        assert.equal(owners.size, 1);
        const owner = [...owners][0];
        for (const [i, result] of results.entries())
          assert.equal(result === 'conflict', (i % 2 === 0 ? 'app-even' : 'app-odd') !== owner, `call ${i}`);
        assert.equal((await ctx.store.getPrincipal(id))?.appKeyId, owner);
      });

      it('setLastLogin records the time', async () => {
        const p = principal('agent');
        await ctx.store.createPrincipal(p);
        await ctx.store.setLastLogin(p.id, T0 + 99);
        assert.equal((await ctx.store.getPrincipal(p.id))?.lastLoginAt, T0 + 99);
      });

      it('setBlocked blocks and unblocks and answers null for an unknown id', async () => {
        const p = principal('user');
        await ctx.store.createPrincipal(p);
        assert.deepEqual(await ctx.store.setBlocked(p.id, true), { ...p, blocked: true });
        assert.equal((await ctx.store.getPrincipal(p.id))?.blocked, true);
        assert.deepEqual(await ctx.store.setBlocked(p.id, false), p);
        assert.equal(await ctx.store.setBlocked(uid('nobody'), true), null);
      });

      it('bumpTokenVersion increments once per call, also for concurrent calls, and answers null for an unknown id', async () => {
        const p = principal('user', { tokenVersion: 4 });
        await ctx.store.createPrincipal(p);
        assert.deepEqual(await ctx.store.bumpTokenVersion(p.id, T0), { ...p, tokenVersion: 5 });
        const nodes = await ctx.nodes(3);
        const results = await concurrently(nodes, 10, (store) => store.bumpTokenVersion(p.id, T0));
        assert.deepEqual(
          results.map((r) => r?.tokenVersion).sort((a, b) => (a ?? 0) - (b ?? 0)),
          range(6, 15),
        );
        assert.equal((await ctx.store.getPrincipal(p.id))?.tokenVersion, 15);
        assert.equal(await ctx.store.bumpTokenVersion(uid('nobody'), T0), null);
      });
    });

    describe('principal counts', () => {
      const ctx = useStore(factory);

      it('counts principals per kind, with zero for a kind that has none', async () => {
        assert.deepEqual(await ctx.store.countPrincipals(), { user: 0, agent: 0, customer: 0 });
        await ctx.store.createPrincipal(principal('user'));
        await ctx.store.createPrincipal(principal('user'));
        await ctx.store.upsertAppUser('app-1', { id: uid('u'), name: 'U', avatar: null, extras: null }, T0);
        await ctx.store.createPrincipal(principal('customer'));
        assert.deepEqual(await ctx.store.countPrincipals(), { user: 3, agent: 0, customer: 1 });
      });
    });

    describe('login sessions and refresh tokens', () => {
      const ctx = shared;

      it('stores a login session and reads it back; null for an unknown sid', async () => {
        const session = loginSession('alice', { deviceType: null, deviceId: null });
        await ctx.store.createLoginSession(session);
        assert.deepEqual(await ctx.store.getLoginSession(session.sid), session);
        assert.equal(await ctx.store.getLoginSession(uid('sid')), null);
      });

      it('revocationState answers token version, blocked flag and session revocation in one read, for known and unknown ids', async () => {
        const alice = principal('user');
        await ctx.store.createPrincipal(alice);
        const live = loginSession(alice.id);
        const revoked = loginSession(alice.id, { revokedAt: T0 + 5 });
        await ctx.store.createLoginSession(live);
        await ctx.store.createLoginSession(revoked);
        assert.deepEqual(await ctx.store.revocationState(alice.id, live.sid), {
          principal: { tokenVersion: 0, blocked: false },
          sessionRevoked: false,
        });
        await ctx.store.setBlocked(alice.id, true);
        await ctx.store.bumpTokenVersion(alice.id, T0 + 10);
        assert.deepEqual(await ctx.store.revocationState(alice.id, revoked.sid), {
          principal: { tokenVersion: 1, blocked: true },
          sessionRevoked: true,
        });
        // bumpTokenVersion revoked the live session too.
        assert.equal((await ctx.store.revocationState(alice.id, live.sid)).sessionRevoked, true);
        assert.deepEqual(await ctx.store.revocationState(uid('nobody'), uid('sid')), {
          principal: null,
          sessionRevoked: false,
        });
        assert.deepEqual(await ctx.store.revocationState(uid('nobody'), revoked.sid), {
          principal: null,
          sessionRevoked: true,
        });
      });

      it('revoking a session marks it revoked and every refresh token of it used, and no other', async () => {
        const session = loginSession('alice');
        const other = loginSession('alice');
        await ctx.store.createLoginSession(session);
        await ctx.store.createLoginSession(other);
        const first = refreshToken(session.sid, 'alice', { usedAt: T0 + 1 });
        const second = refreshToken(session.sid, 'alice');
        const untouched = refreshToken(other.sid, 'alice');
        for (const t of [first, second, untouched]) await ctx.store.saveRefreshToken(t);

        assert.equal(await ctx.store.revokeLoginSession(session.sid, T0 + 10), true);
        assert.deepEqual(await ctx.store.getLoginSession(session.sid), { ...session, revokedAt: T0 + 10 });
        assert.deepEqual(await use(ctx.store, first.hash, T0 + 20), { status: 'reused', token: first });
        assert.deepEqual(await use(ctx.store, second.hash, T0 + 20), {
          status: 'reused',
          token: { ...second, usedAt: T0 + 10 },
        });
        assert.equal((await ctx.store.getLoginSession(other.sid))?.revokedAt, null);
        assert.equal((await use(ctx.store, untouched.hash, T0 + 20)).status, 'ok');
      });

      it('revoking again keeps the first revocation time; an unknown sid answers false', async () => {
        const session = loginSession('alice');
        await ctx.store.createLoginSession(session);
        assert.equal(await ctx.store.revokeLoginSession(session.sid, T0 + 10), true);
        assert.equal(await ctx.store.revokeLoginSession(session.sid, T0 + 20), true);
        assert.equal((await ctx.store.getLoginSession(session.sid))?.revokedAt, T0 + 10);
        assert.equal(await ctx.store.revokeLoginSession(uid('sid'), T0), false);
      });

      it("bumpTokenVersion revokes every login session of the principal and uses up their refresh tokens, no one else's", async () => {
        const alice = principal('user');
        const bob = principal('user');
        await ctx.store.createPrincipal(alice);
        await ctx.store.createPrincipal(bob);
        const web = loginSession(alice.id);
        const phone = loginSession(alice.id, { deviceType: 'im_android', revokedAt: T0 + 1 });
        const bobs = loginSession(bob.id);
        for (const s of [web, phone, bobs]) await ctx.store.createLoginSession(s);
        const fresh = refreshToken(web.sid, alice.id);
        const used = refreshToken(web.sid, alice.id, { usedAt: T0 + 2 });
        const other = refreshToken(bobs.sid, bob.id);
        for (const t of [fresh, used, other]) await ctx.store.saveRefreshToken(t);

        assert.equal((await ctx.store.bumpTokenVersion(alice.id, T0 + 50))?.tokenVersion, 1);
        assert.equal((await ctx.store.getLoginSession(web.sid))?.revokedAt, T0 + 50);
        assert.equal((await ctx.store.getLoginSession(phone.sid))?.revokedAt, T0 + 1);
        assert.deepEqual(await use(ctx.store, fresh.hash, T0 + 60), {
          status: 'reused',
          token: { ...fresh, usedAt: T0 + 50 },
        });
        assert.deepEqual(await use(ctx.store, used.hash, T0 + 60), { status: 'reused', token: used });
        assert.equal((await ctx.store.getLoginSession(bobs.sid))?.revokedAt, null);
        assert.equal((await use(ctx.store, other.hash, T0 + 60)).status, 'ok');
      });

      it('getRefreshToken reads a token without using it; null for an unknown hash', async () => {
        const token = refreshToken(uid('sid'), 'alice');
        await ctx.store.saveRefreshToken(token);
        assert.deepEqual(await ctx.store.getRefreshToken(token.hash), token);
        assert.equal(await ctx.store.getRefreshToken('0'.repeat(64)), null);
        assert.equal((await use(ctx.store, token.hash, T0 + 5)).status, 'ok');
        assert.deepEqual(await ctx.store.getRefreshToken(token.hash), { ...token, usedAt: T0 + 5 });
      });

      it('uses a refresh token once: ok with the token, then reused with the first use time', async () => {
        const token = refreshToken(uid('sid'), 'alice');
        await ctx.store.saveRefreshToken(token);
        const successor = uid('hash');
        assert.deepEqual(await ctx.store.rotateRefreshToken(token.hash, successor, T0 + 5, 0), {
          status: 'ok',
          token: { ...token, usedAt: T0 + 5 },
        });
        // The successor is saved in the same step: same family, session, device and expiry.
        assert.deepEqual(await ctx.store.getRefreshToken(successor), {
          ...token,
          hash: successor,
          createdAt: T0 + 5,
          usedAt: null,
        });
        assert.deepEqual(await use(ctx.store, token.hash, T0 + 6), {
          status: 'reused',
          token: { ...token, usedAt: T0 + 5 },
        });
      });

      it('answers expired for a token at or past its expiry and leaves it unused', async () => {
        const token = refreshToken(uid('sid'), 'alice', { expiresAt: T0 + 100 });
        await ctx.store.saveRefreshToken(token);
        assert.deepEqual(await use(ctx.store, token.hash, T0 + 100), { status: 'expired' });
        assert.deepEqual(await use(ctx.store, token.hash, T0 + 5000), { status: 'expired' });
        // Nothing was marked: the same token is still good at a time before its expiry.
        assert.equal((await use(ctx.store, token.hash, T0 + 99)).status, 'ok');
      });

      it('answers reused, not expired, for a used token past its expiry', async () => {
        const token = refreshToken(uid('sid'), 'alice', { expiresAt: T0 + 100, usedAt: T0 + 50 });
        await ctx.store.saveRefreshToken(token);
        assert.deepEqual(await use(ctx.store, token.hash, T0 + 500), { status: 'reused', token });
      });

      it('answers unknown for a token never saved', async () => {
        assert.deepEqual(await use(ctx.store, uid('hash'), T0), { status: 'unknown' });
      });

      it('of 10 concurrent uses of one refresh token on several nodes exactly one is ok', async () => {
        const nodes = await ctx.nodes(3);
        const token = refreshToken(uid('sid'), 'alice');
        await ctx.store.saveRefreshToken(token);
        const results = await concurrently(nodes, 10, (store, i) => use(store, token.hash, T0 + 10 + i));
        const ok = results.filter((r) => r.status === 'ok');
        assert.equal(ok.length, 1);
        assert.equal(results.filter((r) => r.status === 'reused').length, 9);
        const usedAt = ok[0]?.status === 'ok' ? ok[0].token.usedAt : null;
        for (const r of results) if (r.status === 'reused') assert.equal(r.token.usedAt, usedAt);
      });

      it('grace: the token rotated less than graceMs ago, its successor unused, is answered once and its successor dies', async () => {
        const token = refreshToken(uid('sid'), 'alice');
        await ctx.store.saveRefreshToken(token);
        const [lost, replacement, third] = [uid('hash'), uid('hash'), uid('hash')];
        assert.equal((await ctx.store.rotateRefreshToken(token.hash, lost, T0 + 10, 1000)).status, 'ok');
        assert.deepEqual(await ctx.store.rotateRefreshToken(token.hash, replacement, T0 + 1009, 1000), {
          status: 'grace',
          token: { ...token, usedAt: T0 + 10 },
        });
        // The successor nobody received is spent; the replacement is the session's one live token.
        assert.equal((await ctx.store.getRefreshToken(lost))?.usedAt, T0 + 1009);
        assert.deepEqual(await ctx.store.getRefreshToken(replacement), {
          ...token,
          hash: replacement,
          createdAt: T0 + 1009,
          usedAt: null,
        });
        // Once only: the presented token's successor is now used.
        assert.equal((await ctx.store.rotateRefreshToken(token.hash, third, T0 + 1009, 1000)).status, 'reused');
        assert.equal(await ctx.store.getRefreshToken(third), null);
        // A token replaced by a grace answer gets none itself (someone holds it: two holders, revoke).
        assert.equal((await use(ctx.store, lost, T0 + 1009, 1000)).status, 'reused');
        assert.equal((await use(ctx.store, replacement, T0 + 1010, 1000)).status, 'ok');
      });

      it('no grace at the end of the window, with graceMs 0, two rotations back, after a revocation or past expiry', async () => {
        const chain = async (overrides: Partial<RefreshTokenRecord> = {}) => {
          const first = refreshToken(uid('sid'), 'alice', overrides);
          await ctx.store.saveRefreshToken(first);
          const second = uid('hash');
          assert.equal((await ctx.store.rotateRefreshToken(first.hash, second, T0 + 10, 1000)).status, 'ok');
          return { first, second };
        };
        const edge = await chain();
        assert.equal((await use(ctx.store, edge.first.hash, T0 + 1010, 1000)).status, 'reused');
        assert.equal((await ctx.store.getRefreshToken(edge.second))?.usedAt, null, 'a refusal changes nothing');

        const off = await chain();
        assert.equal((await use(ctx.store, off.first.hash, T0 + 10, 0)).status, 'reused');

        const twice = await chain();
        const third = uid('hash');
        assert.equal((await ctx.store.rotateRefreshToken(twice.second, third, T0 + 20, 1000)).status, 'ok');
        assert.equal((await use(ctx.store, twice.first.hash, T0 + 30, 1000)).status, 'reused');
        assert.equal((await ctx.store.getRefreshToken(third))?.usedAt, null);

        const session = loginSession('alice');
        await ctx.store.createLoginSession(session);
        const revoked = await chain({ sid: session.sid, familyId: session.sid });
        await ctx.store.revokeLoginSession(session.sid, T0 + 20);
        assert.equal((await use(ctx.store, revoked.first.hash, T0 + 30, 1000)).status, 'reused');

        const expiring = await chain({ expiresAt: T0 + 100 });
        assert.equal((await use(ctx.store, expiring.first.hash, T0 + 100, 1000)).status, 'reused');
      });

      it('of 10 concurrent uses with a grace period exactly one is ok, one grace, and one successor survives', async () => {
        const nodes = await ctx.nodes(3);
        const token = refreshToken(uid('sid'), 'alice');
        await ctx.store.saveRefreshToken(token);
        const successors = Array.from({ length: 10 }, () => uid('hash'));
        const results = await concurrently(nodes, 10, (store, i) =>
          store.rotateRefreshToken(token.hash, successors[i] as string, T0 + 10, 60_000),
        );
        assert.deepEqual(
          ['ok', 'grace', 'reused'].map((status) => results.filter((r) => r.status === status).length),
          [1, 1, 8],
        );
        const saved = await Promise.all(successors.map((hash) => ctx.store.getRefreshToken(hash)));
        assert.equal(saved.filter((t) => t !== null).length, 2, 'the ok and the grace answer saved one each');
        assert.equal(saved.filter((t) => t !== null && t.usedAt === null).length, 1);
        assert.equal(saved[results.findIndex((r) => r.status === 'grace')]?.usedAt, null, 'the grace one lives');
      });
    });

    describe('tickets', () => {
      const ctx = shared;

      it('consumes a ticket once and returns every field', async () => {
        const t = ticket({ deviceType: null, deviceId: null });
        await ctx.store.saveTicket(t);
        assert.deepEqual(await ctx.store.consumeTicket(t.hash, T0 + 1), t);
        assert.equal(await ctx.store.consumeTicket(t.hash, T0 + 2), null);
      });

      it('does not return a ticket at or past its expiry', async () => {
        const atExpiry = ticket({ expiresAt: T0 + 30_000 });
        const past = ticket({ expiresAt: T0 + 30_000 });
        await ctx.store.saveTicket(atExpiry);
        await ctx.store.saveTicket(past);
        assert.equal(await ctx.store.consumeTicket(atExpiry.hash, T0 + 30_000), null);
        assert.equal(await ctx.store.consumeTicket(past.hash, T0 + 90_000), null);
      });

      it('answers null for an unknown ticket', async () => {
        assert.equal(await ctx.store.consumeTicket(uid('ticket'), T0), null);
      });

      it('of 10 concurrent consumers of one ticket on several nodes exactly one gets it', async () => {
        const nodes = await ctx.nodes(3);
        const t = ticket();
        await ctx.store.saveTicket(t);
        const results = await concurrently(nodes, 10, (store) => store.consumeTicket(t.hash, T0 + 1));
        assert.deepEqual(
          results.filter((r) => r !== null),
          [t],
        );
      });
    });

    describe('app keys', () => {
      const ctx = shared;

      it('creates app keys, finds one by its hash and lists them oldest first', async () => {
        const later = { id: uid('app'), name: 'Later', keyHash: uid('keyhash'), createdAt: T0 + 10 };
        const earlier = { id: uid('app'), name: 'Earlier', keyHash: uid('keyhash'), createdAt: T0 };
        await ctx.store.createAppKey(later);
        await ctx.store.createAppKey(earlier);
        assert.deepEqual(await ctx.store.findAppKey(later.keyHash), later);
        assert.equal(await ctx.store.findAppKey(uid('keyhash')), null);
        const listed = await ctx.store.listAppKeys();
        assert.deepEqual(
          listed.filter((k) => k.id === earlier.id || k.id === later.id),
          [earlier, later],
        );
      });

      it('rejects a second key with the same hash or id and keeps the first', async () => {
        const key = { id: uid('app'), name: 'One', keyHash: uid('keyhash'), createdAt: T0 + 20 };
        await ctx.store.createAppKey(key);
        await assert.rejects(ctx.store.createAppKey({ ...key, id: uid('app'), name: 'Two' }));
        await assert.rejects(ctx.store.createAppKey({ ...key, keyHash: uid('keyhash'), name: 'Three' }));
        assert.deepEqual(await ctx.store.findAppKey(key.keyHash), key);
        assert.equal((await ctx.store.listAppKeys()).filter((k) => k.id === key.id).length, 1);
      });
    });

    describe('conversations and members', () => {
      const ctx = shared;

      it('creates group and support conversations with their members and reads them back', async () => {
        const group = conversation('group', { name: 'Team' });
        await ctx.store.createConversation(group, ['carol', 'alice', 'bob']);
        assert.deepEqual(await ctx.store.getConversation(group.id), group);
        assert.deepEqual(await ctx.store.members(group.id), ['alice', 'bob', 'carol']);

        const support = supportSession('cust-0');
        await ctx.store.createConversation(support, ['cust-0']);
        assert.deepEqual(await ctx.store.getConversation(support.id), support);
        assert.deepEqual(await ctx.store.members(support.id), ['cust-0']);
      });

      it('keeps the app a group was created by', async () => {
        const group = conversation('group', { appKeyId: uid('app') });
        await ctx.store.createConversation(group, ['alice']);
        assert.deepEqual(await ctx.store.getConversation(group.id), group);
        assert.equal(await ctx.store.removeMember(group.id, 'alice'), true);
        assert.equal((await ctx.store.getConversation(group.id))?.appKeyId, group.appKeyId, 'also once it is empty');
      });

      it('answers null for an unknown conversation and no members', async () => {
        const id = uid('conv');
        assert.equal(await ctx.store.getConversation(id), null);
        assert.deepEqual(await ctx.store.members(id), []);
      });

      it('rejects a conversation id that exists and adds none of its members', async () => {
        const group = conversation('group');
        await ctx.store.createConversation(group, ['alice']);
        await assert.rejects(ctx.store.createConversation({ ...group, name: 'Other' }, ['mallory']));
        assert.deepEqual(await ctx.store.getConversation(group.id), group);
        assert.deepEqual(await ctx.store.members(group.id), ['alice']);
      });

      it('lists members sorted by id (bytewise), adds new ones once and removes one', async () => {
        const group = conversation('group');
        await ctx.store.createConversation(group, ['b', 'a']);
        await ctx.store.addMembers(group.id, ['a', 'Z', 'c', 'c']);
        assert.deepEqual(await ctx.store.members(group.id), ['Z', 'a', 'b', 'c']);
        assert.equal(await ctx.store.removeMember(group.id, 'b'), true);
        assert.equal(await ctx.store.removeMember(group.id, 'b'), false);
        assert.equal(await ctx.store.removeMember(group.id, 'nobody'), false);
        assert.deepEqual(await ctx.store.members(group.id), ['Z', 'a', 'c']);
      });

      it('adds the same members from several nodes concurrently without error or duplicates', async () => {
        const nodes = await ctx.nodes(3);
        const group = conversation('group');
        await ctx.store.createConversation(group, []);
        await concurrently(nodes, 9, (store, i) => store.addMembers(group.id, ['m1', 'm2', `only-${i % 3}`]));
        assert.deepEqual(await ctx.store.members(group.id), ['m1', 'm2', 'only-0', 'only-1', 'only-2']);
      });
    });

    describe('appendMessages', () => {
      const ctx = shared;

      async function group(members = ['alice', 'bob']): Promise<string> {
        const c = conversation('group');
        await ctx.store.createConversation(c, members);
        return c.id;
      }

      it('gives a batch seqs 1..N in order with the serialized body and moves lastSeq', async () => {
        const id = await group();
        const batch = [message(id, 'alice', { text: 'one' }), message(id, 'bob'), message(id, 'alice')];
        const results = await ctx.store.appendMessages(batch);
        assert.deepEqual(
          results,
          batch.map((m, i) => ({
            record: { id: m.id, conversationId: id, seq: i + 1, fromId: m.fromId, ts: m.ts, body: m.serialize(i + 1) },
            duplicate: false,
          })),
        );
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 3);
        assert.deepEqual(
          await ctx.store.messagesAfter(id, 0, 10),
          results.map((r) => r.record),
        );
        const next = await ctx.store.appendMessages([message(id, 'bob')]);
        assert.equal(next[0]?.record.seq, 4);
      });

      it('counts seqs per conversation within one batch', async () => {
        const a = await group();
        const b = await group();
        const results = await ctx.store.appendMessages([
          message(a, 'alice'),
          message(b, 'alice'),
          message(a, 'bob'),
          message(b, 'bob'),
          message(b, 'alice'),
        ]);
        assert.deepEqual(
          results.map((r) => [r.record.conversationId, r.record.seq]),
          [
            [a, 1],
            [b, 1],
            [a, 2],
            [b, 2],
            [b, 3],
          ],
        );
        assert.equal((await ctx.store.getConversation(a))?.lastSeq, 2);
        assert.equal((await ctx.store.getConversation(b))?.lastSeq, 3);
      });

      it('accepts an empty batch', async () => {
        assert.deepEqual(await ctx.store.appendMessages([]), []);
      });

      it('creates a direct conversation with both members on its first message and reuses it after', async () => {
        const id = uid('dm');
        const [first] = await ctx.store.appendMessages([
          message(id, 'alice', { ts: T0 + 7, createDirect: ['alice', 'bob'] }),
        ]);
        assert.equal(first?.record.seq, 1);
        assert.deepEqual(await ctx.store.getConversation(id), {
          id,
          kind: 'direct',
          name: null,
          lastSeq: 1,
          createdAt: T0 + 7,
          customerId: null,
          agentId: null,
          status: null,
          appKeyId: null,
          waitingSince: null,
        });
        assert.deepEqual(await ctx.store.members(id), ['alice', 'bob']);
        const again = await ctx.store.appendMessages([
          message(id, 'bob', { ts: T0 + 9, createDirect: ['bob', 'alice'] }),
          message(id, 'alice', { ts: T0 + 9, createDirect: ['alice', 'bob'] }),
        ]);
        assert.deepEqual(seqsOf(again.map((r) => r.record)), [2, 3]);
        assert.equal((await ctx.store.getConversation(id))?.createdAt, T0 + 7);
        assert.deepEqual(await ctx.store.members(id), ['alice', 'bob']);
      });

      it('rejects a batch with a message to an unknown conversation as a whole', async () => {
        const id = await group();
        const dm = uid('dm');
        const missing = uid('missing');
        await assert.rejects(
          ctx.store.appendMessages([
            message(id, 'alice', { clientMsgId: 'c-1' }),
            message(dm, 'alice', { createDirect: ['alice', 'bob'] }),
            message(missing, 'alice'),
          ]),
        );
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 0);
        assert.deepEqual(await ctx.store.messagesAfter(id, 0, 10), []);
        assert.equal(await ctx.store.getConversation(dm), null);
        assert.deepEqual(await ctx.store.members(dm), []);
        // No gap and no stored client_msg_id: the retry is stored as new, with seq 1.
        const [retry] = await ctx.store.appendMessages([message(id, 'alice', { clientMsgId: 'c-1' })]);
        assert.equal(retry?.duplicate, false);
        assert.equal(retry?.record.seq, 1);
      });

      it('rejects a batch as a whole when building a message body fails', async () => {
        const id = await group();
        const broken: NewMessage = {
          ...message(id, 'bob'),
          serialize: () => {
            throw new Error('cannot serialize');
          },
        };
        await assert.rejects(ctx.store.appendMessages([message(id, 'alice'), broken]), /cannot serialize/);
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 0);
        assert.deepEqual(await ctx.store.messagesAfter(id, 0, 10), []);
      });

      it('returns the original record for a client_msg_id stored before and stores nothing new', async () => {
        const id = await group();
        const [original] = await ctx.store.appendMessages([
          message(id, 'alice', { clientMsgId: 'c-1', text: 'first' }),
        ]);
        await ctx.store.appendMessages([message(id, 'bob')]);
        const [again, other] = await ctx.store.appendMessages([
          message(id, 'alice', { clientMsgId: 'c-1', text: 'second try' }),
          message(id, 'alice', { clientMsgId: 'c-2' }),
        ]);
        assert.deepEqual(again, { record: original?.record, duplicate: true });
        assert.deepEqual(other?.record.seq, 3);
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 3);
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(id, 0, 10)), [1, 2, 3]);
      });

      it('treats a client_msg_id repeated within one batch as a duplicate of its first message', async () => {
        const id = await group();
        const results = await ctx.store.appendMessages([
          message(id, 'alice', { clientMsgId: 'c-1' }),
          message(id, 'alice', { clientMsgId: 'c-1' }),
          message(id, 'bob', { clientMsgId: 'c-1' }),
        ]);
        assert.deepEqual(
          results.map((r) => [r.record.seq, r.duplicate]),
          [
            [1, false],
            [1, true],
            [2, false],
          ],
        );
        assert.deepEqual(results[1]?.record, results[0]?.record);
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(id, 0, 10)), [1, 2]);
      });

      it('scopes client_msg_id to sender and conversation; messages without one are never duplicates', async () => {
        const a = await group();
        const b = await group();
        const results = await ctx.store.appendMessages([
          message(a, 'alice', { clientMsgId: 'same' }),
          message(a, 'bob', { clientMsgId: 'same' }),
          message(b, 'alice', { clientMsgId: 'same' }),
          message(a, 'alice'),
          message(a, 'alice'),
        ]);
        assert.deepEqual(
          results.map((r) => r.duplicate),
          [false, false, false, false, false],
        );
        assert.equal((await ctx.store.getConversation(a))?.lastSeq, 4);
      });

      it('continues seqs and finds earlier client_msg_ids when another store on the data wrote in between (a restart, a second node)', async () => {
        const [first, second] = (await ctx.nodes(2)) as [Store, Store];
        const id = await group();
        await first.appendMessages([message(id, 'alice'), message(id, 'bob', { clientMsgId: 'b-1' })]);
        const [next, repeat] = await second.appendMessages([
          message(id, 'alice', { clientMsgId: 'a-1' }),
          message(id, 'bob', { clientMsgId: 'b-1' }),
        ]);
        assert.deepEqual(
          [next?.record.seq, next?.duplicate, repeat?.record.seq, repeat?.duplicate],
          [3, false, 2, true],
        );
        const [again, after] = await first.appendMessages([
          message(id, 'alice', { clientMsgId: 'a-1' }),
          message(id, 'bob'),
        ]);
        assert.deepEqual(again, { record: next?.record, duplicate: true });
        assert.equal(after?.record.seq, 4);
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(id, 0, 10)), [1, 2, 3, 4]);
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 4);
      });

      it('stores a batch after a failed one without a gap, client_msg_ids of the failed one included', async () => {
        const id = await group();
        await ctx.store.appendMessages([message(id, 'alice')]);
        await assert.rejects(
          ctx.store.appendMessages([message(id, 'alice', { clientMsgId: 'x-1' }), message(uid('missing'), 'alice')]),
        );
        const [retry] = await ctx.store.appendMessages([message(id, 'alice', { clientMsgId: 'x-1' })]);
        assert.deepEqual([retry?.record.seq, retry?.duplicate], [2, false]);
      });

      it('gives concurrent batches from several nodes seqs 1..N without gaps or repeats', async () => {
        const nodes = await ctx.nodes(4);
        const id = await group();
        const results = await concurrently(nodes, 16, (store, i) =>
          store.appendMessages(
            Array.from({ length: 10 }, (_, j) => message(id, i % 2 ? 'alice' : 'bob', { text: `${i}.${j}` })),
          ),
        );
        for (const batch of results) {
          const seqs = seqsOf(batch.map((r) => r.record));
          // A batch is one transaction, so its messages are consecutive.
          assert.deepEqual(seqs, range(seqs[0] as number, (seqs[0] as number) + 9));
        }
        const all = results.flat().map((r) => r.record.seq);
        assert.deepEqual(
          all.sort((x, y) => x - y),
          range(1, 160),
        );
        const stored = await ctx.store.messagesAfter(id, 0, 1000);
        assert.deepEqual(seqsOf(stored), range(1, 160));
        for (const record of stored) assert.equal(JSON.parse(record.body).seq, record.seq);
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 160);
      });

      it('commits concurrent batches that touch the same conversations in opposite orders', async () => {
        const nodes = await ctx.nodes(4);
        const a = await group();
        const b = await group();
        await concurrently(nodes, 16, (store, i) =>
          store.appendMessages(
            i % 2 === 0
              ? [message(a, 'alice'), message(b, 'alice'), message(a, 'alice')]
              : [message(b, 'bob'), message(a, 'bob'), message(b, 'bob')],
          ),
        );
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(a, 0, 100)), range(1, 24));
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(b, 0, 100)), range(1, 24));
      });

      it('stores a client_msg_id sent concurrently from several nodes once; the others get it as duplicate', async () => {
        const nodes = await ctx.nodes(4);
        const id = await group();
        for (let round = 0; round < 3; round++) {
          const clientMsgId = `retry-${round}`;
          const results = await concurrently(nodes, 8, (store, i) =>
            store.appendMessages([message(id, 'alice', { clientMsgId, text: `attempt ${i}` })]),
          );
          const outcomes = results.map((r) => r[0]);
          assert.equal(outcomes.filter((o) => o?.duplicate === false).length, 1);
          const winner = outcomes.find((o) => o?.duplicate === false)?.record;
          for (const o of outcomes) assert.deepEqual(o?.record, winner);
          assert.equal(winner?.seq, round + 1);
        }
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(id, 0, 100)), [1, 2, 3]);
      });

      it('creates a direct conversation once when its first messages arrive concurrently on several nodes', async () => {
        const nodes = await ctx.nodes(4);
        const id = uid('dm');
        const results = await concurrently(nodes, 8, (store, i) =>
          store.appendMessages([
            message(id, i % 2 ? 'alice' : 'bob', { createDirect: i % 2 ? ['alice', 'bob'] : ['bob', 'alice'] }),
          ]),
        );
        assert.deepEqual(
          results.map((r) => r[0]?.record.seq as number).sort((x, y) => x - y),
          range(1, 8),
        );
        assert.equal((await ctx.store.getConversation(id))?.lastSeq, 8);
        assert.deepEqual(await ctx.store.members(id), ['alice', 'bob']);
      });
    });

    describe('history pages', () => {
      const ctx = shared;
      let id = '';

      before(async () => {
        const c = conversation('group');
        await ctx.store.createConversation(c, ['alice']);
        id = c.id;
        await ctx.store.appendMessages(
          Array.from({ length: 25 }, (_, i) => message(id, 'alice', { text: `m${i + 1}` })),
        );
      });

      it('messagesAfter returns the messages above a seq oldest first, the newest `limit` of them when more', async () => {
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(id, 20, 10)), [21, 22, 23, 24, 25]);
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(id, 5, 3)), [23, 24, 25]);
        assert.deepEqual(await ctx.store.messagesAfter(id, 25, 10), []);
        assert.deepEqual(await ctx.store.messagesAfter(uid('conv'), 0, 10), []);
        const [first] = await ctx.store.messagesAfter(id, 0, 25);
        assert.equal(JSON.parse(first?.body ?? '{}').text, 'm1');
      });

      it('messagesBefore returns the newest `limit` below a seq, or of all when null, oldest first', async () => {
        assert.deepEqual(seqsOf(await ctx.store.messagesBefore(id, null, 4)), [22, 23, 24, 25]);
        assert.deepEqual(seqsOf(await ctx.store.messagesBefore(id, 10, 3)), [7, 8, 9]);
        assert.deepEqual(seqsOf(await ctx.store.messagesBefore(id, 3, 10)), [1, 2]);
        assert.deepEqual(await ctx.store.messagesBefore(id, 1, 10), []);
      });

      it('pages back through the whole history with messagesBefore', async () => {
        const seen: number[] = [];
        let before: number | null = null;
        for (let page = 0; page < 10; page++) {
          const rows = await ctx.store.messagesBefore(id, before, 7);
          if (rows.length === 0) break;
          seen.unshift(...seqsOf(rows));
          before = rows[0]?.seq as number;
        }
        assert.deepEqual(seen, range(1, 25));
      });
    });

    describe('cursors and unread counts', () => {
      const ctx = shared;

      it('replayCursors lists the conversations with messages above the cursor of the device type', async () => {
        const me = uid('me');
        const [quiet, busy, other, foreign] = ['a', 'b', 'c', 'd'].map((p) => `${p}-${uid('conv')}`) as string[];
        for (const [i, id] of [quiet, busy, other, foreign].entries())
          await ctx.store.createConversation(conversation('group', { id: id as string, createdAt: T0 + i }), [
            i === 3 ? 'someone' : me,
            'bob',
          ]);
        await ctx.store.appendMessages([
          message(busy as string, 'bob'),
          message(busy as string, me),
          message(busy as string, 'bob'),
          message(other as string, 'bob'),
          message(foreign as string, 'bob'),
        ]);
        assert.deepEqual(await ctx.store.replayCursors(me, 'im_web'), [
          { conversationId: busy, cursor: 0, lastSeq: 3 },
          { conversationId: other, cursor: 0, lastSeq: 1 },
        ]);
        await ctx.store.advanceCursor(me, 'im_web', busy as string, 2);
        await ctx.store.advanceCursor(me, 'im_web', other as string, 1);
        assert.deepEqual(await ctx.store.replayCursors(me, 'im_web'), [
          { conversationId: busy, cursor: 2, lastSeq: 3 },
        ]);
        assert.equal((await ctx.store.replayCursors(me, 'im_android')).length, 2);
      });

      it("messagesAfter with exclude leaves out only that principal's messages from that device type", async () => {
        const c = conversation('group');
        await ctx.store.createConversation(c, ['alice', 'bob']);
        await ctx.store.appendMessages([
          message(c.id, 'alice', { fromDevice: 'im_web', text: 'a1 web' }),
          message(c.id, 'bob', { fromDevice: 'im_web', text: 'b2 web' }),
          message(c.id, 'alice', { fromDevice: 'im_app_ios', text: 'a3 ios' }),
          message(c.id, 'alice', { fromDevice: null, text: 'a4 no device' }),
          message(c.id, 'alice', { fromDevice: 'im_web', text: 'a5 web' }),
          message(c.id, 'bob', { fromDevice: 'im_app_ios', text: 'b6 ios' }),
        ]);
        const aliceWeb = { fromId: 'alice', fromDevice: 'im_web' };
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(c.id, 0, 10, aliceWeb)), [2, 3, 4, 6]);
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(c.id, 2, 10, aliceWeb)), [3, 4, 6]);
        // The limit counts what is returned: the newest `limit` of the others' messages.
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(c.id, 0, 2, aliceWeb)), [4, 6]);
        assert.deepEqual(
          seqsOf(await ctx.store.messagesAfter(c.id, 0, 10, { fromId: 'alice', fromDevice: 'im_app_ios' })),
          [1, 2, 4, 5, 6],
        );
        assert.deepEqual(
          seqsOf(await ctx.store.messagesAfter(c.id, 0, 10, { fromId: 'bob', fromDevice: 'im_web' })),
          [1, 3, 4, 5, 6],
        );
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(c.id, 5, 10, aliceWeb)), [6]);
        assert.deepEqual(seqsOf(await ctx.store.messagesAfter(c.id, 0, 10)), [1, 2, 3, 4, 5, 6]);
        const page = await ctx.store.messagesBefore(c.id, null, 10);
        assert.deepEqual(seqsOf(page), [1, 2, 3, 4, 5, 6], 'history keeps every message');
      });

      it('advanceCursor never moves a cursor back, also under concurrent calls from several nodes', async () => {
        const nodes = await ctx.nodes(3);
        const me = uid('me');
        const c = conversation('group');
        await ctx.store.createConversation(c, [me, 'bob']);
        await ctx.store.appendMessages(Array.from({ length: 30 }, () => message(c.id, 'bob')));
        await ctx.store.advanceCursor(me, 'im_web', c.id, 10);
        await ctx.store.advanceCursor(me, 'im_web', c.id, 4);
        assert.deepEqual(await ctx.store.replayCursors(me, 'im_web'), [
          { conversationId: c.id, cursor: 10, lastSeq: 30 },
        ]);
        const order = [17, 3, 25, 12, 24, 1, 20, 8, 19, 22, 5, 11];
        await concurrently(nodes, order.length, (store, i) =>
          store.advanceCursor(me, 'im_web', c.id, order[i] as number),
        );
        assert.deepEqual(await ctx.store.replayCursors(me, 'im_web'), [
          { conversationId: c.id, cursor: 25, lastSeq: 30 },
        ]);
      });

      it('conversationsOf gives each conversation newest first with the cursor and unread, not counting own messages', async () => {
        const me = uid('me');
        const older = conversation('group', { createdAt: T0 + 1 });
        const newer = conversation('group', { createdAt: T0 + 2 });
        const notMine = conversation('group', { createdAt: T0 + 3 });
        await ctx.store.createConversation(older, [me, 'bob']);
        await ctx.store.createConversation(newer, [me, 'bob']);
        await ctx.store.createConversation(notMine, ['bob']);
        await ctx.store.appendMessages([
          message(older.id, 'bob'),
          message(older.id, me),
          message(older.id, 'bob'),
          message(older.id, 'carol'),
          message(newer.id, me),
          message(notMine.id, 'bob'),
        ]);
        await ctx.store.advanceCursor(me, 'im_web', older.id, 1);
        const summaries = await ctx.store.conversationsOf(me, 'im_web');
        assert.deepEqual(summaries, [
          { conversation: { ...newer, lastSeq: 1 }, cursor: 0, unread: 0 },
          { conversation: { ...older, lastSeq: 4 }, cursor: 1, unread: 2 },
        ]);
        const other = await ctx.store.conversationsOf(me, 'im_android');
        assert.deepEqual(
          other.map((s) => [s.cursor, s.unread]),
          [
            [0, 0],
            [0, 3],
          ],
        );
        assert.deepEqual(await ctx.store.conversationsOf(uid('nobody'), 'im_web'), []);
      });
    });

    describe('peers', () => {
      const ctx = shared;

      it('peersOf lists who shares a direct conversation or support session with the principal, not group members', async () => {
        const me = uid('me');
        const [friend, other, agent, groupie] = ['friend', 'other', 'agent', 'groupie'].map(uid) as string[];
        await ctx.store.appendMessages([
          message(uid('dm'), me, { createDirect: [me, friend as string] }),
          message(uid('dm'), other as string, { createDirect: [other as string, me] }),
        ]);
        const support = supportSession(me);
        await ctx.store.createConversation(support, [me]);
        await ctx.store.claimSupport(support.id, agent as string);
        await ctx.store.createConversation(conversation('group'), [me, groupie as string, friend as string]);
        await ctx.store.createConversation(conversation('direct'), [uid('x'), uid('y')]);

        assert.deepEqual((await ctx.store.peersOf(me, 10)).sort(), [agent, friend, other].sort());
        assert.deepEqual(await ctx.store.peersOf(groupie as string, 10), []);
        assert.deepEqual(await ctx.store.peersOf(agent as string, 10), [me]);
        assert.deepEqual(await ctx.store.peersOf(uid('nobody'), 10), []);
      });

      it('peersOf names each peer once and at most `limit` of them', async () => {
        const me = uid('me');
        const friends = Array.from({ length: 5 }, () => uid('friend'));
        await ctx.store.appendMessages(friends.map((f) => message(uid('dm'), me, { createDirect: [me, f] })));
        const support = supportSession(friends[0] as string);
        await ctx.store.createConversation(support, [friends[0] as string]);
        await ctx.store.claimSupport(support.id, me);
        assert.deepEqual((await ctx.store.peersOf(me, 10)).sort(), [...friends].sort());
        const limited = await ctx.store.peersOf(me, 3);
        assert.equal(limited.length, 3);
        assert.equal(new Set(limited).size, 3);
        for (const id of limited) assert.ok(friends.includes(id));
      });

      it('peersOf finds `limit` distinct peers behind many rows of the same one', async () => {
        // An agent with a dozen past sessions of one customer (conversation ids that sort first)
        // and one direct friend: more rows of the customer than a first read of a few per peer takes.
        const me = uid('agent');
        const [customer, friend] = [uid('customer'), uid('friend')];
        for (let i = 0; i < 12; i++)
          await ctx.store.createConversation(supportSession(customer, { id: `a-${uid('s')}`, status: 'closed' }), [
            customer,
            me,
          ]);
        await ctx.store.appendMessages([message(`z-${uid('dm')}`, me, { createDirect: [me, friend] })]);
        assert.deepEqual((await ctx.store.peersOf(me, 2)).sort(), [customer, friend].sort());
        const one = await ctx.store.peersOf(me, 1);
        assert.equal(one.length, 1);
        assert.ok([customer, friend].includes(one[0] as string));
        assert.deepEqual((await ctx.store.peersOf(me, 10)).sort(), [customer, friend].sort());
      });
    });

    describe('support sessions', () => {
      const ctx = shared;

      it('claimSupport gives the session to the first agent, who joins it; ok again for them, taken for another', async () => {
        const s = supportSession('cust-1');
        await ctx.store.createConversation(s, ['cust-1']);
        assert.equal(await ctx.store.claimSupport(s.id, 'agent-1'), 'ok');
        assert.deepEqual(await ctx.store.getConversation(s.id), { ...s, agentId: 'agent-1', status: 'claimed' });
        assert.deepEqual(await ctx.store.members(s.id), ['agent-1', 'cust-1']);
        assert.equal(await ctx.store.claimSupport(s.id, 'agent-1'), 'ok');
        assert.equal(await ctx.store.claimSupport(s.id, 'agent-2'), 'taken');
        assert.deepEqual(await ctx.store.getConversation(s.id), { ...s, agentId: 'agent-1', status: 'claimed' });
        assert.deepEqual(await ctx.store.members(s.id), ['agent-1', 'cust-1']);
      });

      it('claimSupport answers not_found for unknown and non-support conversations, closed for a closed session', async () => {
        assert.equal(await ctx.store.claimSupport(uid('ss'), 'agent-1'), 'not_found');
        const g = conversation('group');
        await ctx.store.createConversation(g, ['alice']);
        assert.equal(await ctx.store.claimSupport(g.id, 'agent-1'), 'not_found');
        assert.deepEqual(await ctx.store.getConversation(g.id), g);

        const open = supportSession('cust-2');
        await ctx.store.createConversation(open, ['cust-2']);
        await ctx.store.closeSupport(open.id);
        assert.equal(await ctx.store.claimSupport(open.id, 'agent-1'), 'closed');
        const claimed = supportSession('cust-3');
        await ctx.store.createConversation(claimed, ['cust-3']);
        await ctx.store.claimSupport(claimed.id, 'agent-1');
        await ctx.store.closeSupport(claimed.id);
        assert.equal(await ctx.store.claimSupport(claimed.id, 'agent-1'), 'closed');
        assert.deepEqual(await ctx.store.getConversation(claimed.id), {
          ...claimed,
          agentId: 'agent-1',
          status: 'closed',
        });
        assert.deepEqual(await ctx.store.members(open.id), ['cust-2']);
      });

      it('of 10 agents claiming one session concurrently on several nodes exactly one wins', async () => {
        const nodes = await ctx.nodes(3);
        const s = supportSession('cust-4');
        await ctx.store.createConversation(s, ['cust-4']);
        const results = await concurrently(nodes, 10, (store, i) => store.claimSupport(s.id, `agent-${i}`));
        assert.equal(results.filter((r) => r === 'ok').length, 1);
        assert.equal(results.filter((r) => r === 'taken').length, 9);
        const winner = `agent-${results.indexOf('ok')}`;
        assert.equal((await ctx.store.getConversation(s.id))?.agentId, winner);
        assert.deepEqual(await ctx.store.members(s.id), [winner, 'cust-4'].sort());
      });
    });

    describe('support sessions of a customer', () => {
      const ctx = shared;

      it('openSupportSession stores a new session, then returns the one not closed instead of another', async () => {
        const customer = uid('cust');
        const first = supportSession(customer, { createdAt: T0 + 1 });
        assert.deepEqual(await ctx.store.openSupportSession(first), { conversation: first, created: true });
        assert.deepEqual(await ctx.store.members(first.id), [customer]);
        const second = supportSession(customer, { createdAt: T0 + 2 });
        assert.deepEqual(await ctx.store.openSupportSession(second), { conversation: first, created: false });
        assert.equal(await ctx.store.getConversation(second.id), null);

        // Claimed is not closed: still the same session.
        await ctx.store.claimSupport(first.id, 'agent-1');
        const claimed = await ctx.store.openSupportSession(supportSession(customer));
        assert.equal(claimed.created, false);
        assert.deepEqual(claimed.conversation, { ...first, agentId: 'agent-1', status: 'claimed' });

        // Once closed, the next call opens a new one.
        await ctx.store.closeSupport(first.id);
        const third = supportSession(customer, { createdAt: T0 + 3 });
        assert.deepEqual(await ctx.store.openSupportSession(third), { conversation: third, created: true });
        // Other customers are independent.
        const other = supportSession(uid('cust'));
        assert.equal((await ctx.store.openSupportSession(other)).created, true);
      });

      it('refuses a second session not closed for a customer through createConversation too', async () => {
        const customer = uid('cust');
        const first = supportSession(customer);
        await ctx.store.createConversation(first, [customer]);
        await assert.rejects(ctx.store.createConversation(supportSession(customer), [customer]));
        await ctx.store.closeSupport(first.id);
        await ctx.store.createConversation(supportSession(customer), [customer]);
      });

      it('of 10 concurrent openSupportSession calls for one customer on several nodes exactly one creates, all get it', async () => {
        const nodes = await ctx.nodes(3);
        const customer = uid('cust');
        const results = await concurrently(nodes, 10, (store) => store.openSupportSession(supportSession(customer)));
        assert.equal(results.filter((r) => r.created).length, 1);
        assert.equal(new Set(results.map((r) => r.conversation.id)).size, 1);
      });

      it("sets waitingSince with the customer's first message only, and keeps it", async () => {
        const customer = uid('cust');
        const s = supportSession(customer);
        await ctx.store.openSupportSession(s);
        assert.equal((await ctx.store.getConversation(s.id))?.waitingSince, null);
        await ctx.store.claimSupport(s.id, 'agent-w');
        // An agent writing first does not put the customer in the queue.
        await ctx.store.appendMessages([message(s.id, 'agent-w', { ts: T0 + 50 })]);
        assert.equal((await ctx.store.getConversation(s.id))?.waitingSince, null);
        await ctx.store.appendMessages([
          message(s.id, customer, { ts: T0 + 60 }),
          message(s.id, customer, { ts: T0 + 61 }),
        ]);
        assert.equal((await ctx.store.getConversation(s.id))?.waitingSince, T0 + 60);
        await ctx.store.appendMessages([message(s.id, customer, { ts: T0 + 70 })]);
        assert.equal((await ctx.store.getConversation(s.id))?.waitingSince, T0 + 60);
        // Messages elsewhere never set it.
        const g = conversation('group');
        await ctx.store.createConversation(g, ['alice']);
        await ctx.store.appendMessages([message(g.id, 'alice')]);
        assert.equal((await ctx.store.getConversation(g.id))?.waitingSince, null);
      });
    });

    describe('support lists', () => {
      const ctx = useStore(factory);

      async function customerWithSession(name: string, channel: unknown, createdAt: number) {
        const customer = principal('customer', { name, extras: { channel, email: 'x@example.com' } });
        await ctx.store.createPrincipal(customer);
        const s = supportSession(customer.id, { createdAt });
        await ctx.store.openSupportSession(s);
        return { customer, session: s };
      }

      it('lists in the queue only sessions the customer wrote in, longest waiting first, with name, channel and first message', async () => {
        const a = await customerWithSession('Ann', 'web', T0 + 1);
        const b = await customerWithSession('Ben', 'ios', T0 + 2);
        const empty = await customerWithSession('Eve', 'web', T0 + 3);
        const odd = await customerWithSession('Odd', 42, T0 + 4);
        assert.deepEqual(await ctx.store.listSupport('open', 'agent-1', 10), [], 'no session has a message yet');

        // B writes first, then A, then Odd: the queue follows who waits longest, not creation.
        const [bFirst] = await ctx.store.appendMessages([
          message(b.session.id, b.customer.id, { ts: T0 + 100, text: 'B here' }),
        ]);
        const [aFirst] = await ctx.store.appendMessages([
          message(a.session.id, a.customer.id, { ts: T0 + 200, text: 'A here' }),
          message(a.session.id, a.customer.id, { ts: T0 + 201, text: 'A again' }),
        ]);
        await ctx.store.appendMessages([message(odd.session.id, odd.customer.id, { ts: T0 + 300 })]);
        const open = await ctx.store.listSupport('open', 'agent-1', 10);
        assert.deepEqual(
          open.map((l) => l.conversation.id),
          [b.session.id, a.session.id, odd.session.id],
        );
        assert.deepEqual(open[0], {
          conversation: { ...b.session, lastSeq: 1, waitingSince: T0 + 100 },
          customerName: 'Ben',
          channel: 'ios',
          firstMessage: bFirst?.record,
        });
        assert.deepEqual(open[1]?.firstMessage, aFirst?.record);
        assert.equal(open[1]?.conversation.lastSeq, 2);
        assert.equal(open[2]?.channel, null, 'a channel that is not a string');
        assert.ok(!open.some((l) => l.conversation.id === empty.session.id));
        assert.deepEqual(
          (await ctx.store.listSupport('open', 'agent-1', 2)).map((l) => l.conversation.id),
          [b.session.id, a.session.id],
        );

        // Claimed sessions leave the queue for the agent's own list; closed ones leave both.
        await ctx.store.claimSupport(b.session.id, 'agent-1');
        await ctx.store.claimSupport(empty.session.id, 'agent-1');
        await ctx.store.claimSupport(odd.session.id, 'agent-2');
        assert.deepEqual(
          (await ctx.store.listSupport('open', 'agent-1', 10)).map((l) => l.conversation.id),
          [a.session.id],
        );
        const mine = await ctx.store.listSupport('mine', 'agent-1', 10);
        assert.deepEqual(
          mine.map((l) => l.conversation.id),
          [b.session.id, empty.session.id],
        );
        assert.equal(mine[0]?.customerName, 'Ben');
        assert.equal(mine[1]?.firstMessage, null);
        assert.deepEqual(
          (await ctx.store.listSupport('mine', 'agent-1', 1)).map((l) => l.conversation.id),
          [b.session.id],
        );
        assert.deepEqual(
          (await ctx.store.listSupport('mine', 'agent-2', 10)).map((l) => l.conversation.id),
          [odd.session.id],
        );
        assert.deepEqual(await ctx.store.listSupport('mine', 'agent-3', 10), []);

        await ctx.store.closeSupport(b.session.id);
        await ctx.store.closeSupport(a.session.id);
        assert.equal((await ctx.store.getConversation(a.session.id))?.status, 'closed');
        assert.deepEqual(await ctx.store.listSupport('open', 'agent-1', 10), []);
        assert.deepEqual(
          (await ctx.store.listSupport('mine', 'agent-1', 10)).map((l) => l.conversation.id),
          [empty.session.id],
        );
      });
    });

    describe('lifecycle', () => {
      const ctx = shared;

      it('answers ping', async () => {
        await ctx.store.ping();
      });

      it('migrates again without error and keeps the data', async () => {
        const p = principal('agent');
        await ctx.store.createPrincipal(p);
        await ctx.store.migrate();
        const [, peer] = await ctx.nodes(2);
        await peer?.migrate();
        assert.deepEqual(await ctx.store.getPrincipal(p.id), p);
        assert.deepEqual(await peer?.getPrincipal(p.id), p);
      });
    });
  });
}
