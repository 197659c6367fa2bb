import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ClusterState } from '../../src/cluster/cluster-state.js';

/** One cluster's shared state (a fresh database for PostgreSQL), and its nodes. */
export interface ClusterStateFixture {
  /** A started node of this cluster with this id. */
  node(id: string): Promise<ClusterState>;
  /** Stops every node and removes the cluster's data. */
  cleanup(): Promise<void>;
}

export interface ClusterStateTarget {
  name: string;
  /** Set when the suite cannot run here: the reason shown for the skip. */
  skip?: string | undefined;
  /** Nodes of one fixture share slots and presence (false for the one-node memory state). */
  shared: boolean;
  open(): Promise<ClusterStateFixture>;
}

/**
 * The behaviour every ClusterState keeps (cluster/cluster-state.ts), run through a fixture
 * against each implementation, as the Store and Broker suites are.
 */
export function clusterStateConformance(target: ClusterStateTarget): void {
  describe(`ClusterState conformance: ${target.name}`, { skip: target.skip ?? false }, () => {
    let fixture: ClusterStateFixture;
    const notShared = target.shared ? false : 'one node only';
    beforeEach(async () => {
      fixture = await target.open();
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    it('makes the last claim of a slot its holder and tells each claim whom it displaced', async () => {
      const node = await fixture.node('n1');
      assert.equal(await node.claimSlot('alice|web', 'c1'), null);
      assert.deepEqual(await node.claimSlot('alice|web', 'c2'), { connectionId: 'c1', node: 'n1' });
      assert.deepEqual(await node.claimSlot('alice|web', 'c3'), { connectionId: 'c2', node: 'n1' });
      assert.equal(await node.claimSlot('alice|web', 'c3'), null, 'a holder claiming again displaces nobody');
      assert.equal(await node.claimSlot('alice|ios', 'c4'), null, 'slots are independent');
    });

    it('frees a slot only for its current holder: an old socket never frees the newer one', async () => {
      const node = await fixture.node('n1');
      await node.claimSlot('bob|web', 'old');
      await node.claimSlot('bob|web', 'new');
      await node.releaseSlot('bob|web', 'old');
      assert.deepEqual(await node.lostSlots([{ slot: 'bob|web', connectionId: 'old' }]), ['old']);
      assert.deepEqual(await node.claimSlot('bob|web', 'newer'), { connectionId: 'new', node: 'n1' });
      await node.releaseSlot('bob|web', 'newer');
      assert.equal(await node.claimSlot('bob|web', 'again'), null, 'the holder freed it');
    });

    it('frees every slot of releases made at once, and only those still held by the releasing socket', async () => {
      const node = await fixture.node('n1');
      const slots = Array.from({ length: 50 }, (_, i) => `many-${i}|web`);
      for (const slot of slots) await node.claimSlot(slot, `${slot}-1`);
      await node.claimSlot('many-0|web', 'many-0|web-2');
      await Promise.all(slots.map((slot) => node.releaseSlot(slot, `${slot}-1`)));
      assert.deepEqual(await node.claimSlot('many-0|web', 'many-0|web-3'), {
        connectionId: 'many-0|web-2',
        node: 'n1',
      });
      for (const slot of slots.slice(1)) assert.equal(await node.claimSlot(slot, `${slot}-3`), null, slot);
    });

    it('lists as lost exactly the held slots another claim has taken', async () => {
      const node = await fixture.node('n1');
      await node.claimSlot('s1', 'a');
      await node.claimSlot('s2', 'b');
      await node.claimSlot('s3', 'c');
      await node.claimSlot('s2', 'b2');
      await node.releaseSlot('s3', 'c');
      assert.deepEqual(await node.lostSlots([]), []);
      assert.deepEqual(
        await node.lostSlots([
          { slot: 's1', connectionId: 'a' },
          { slot: 's2', connectionId: 'b' },
          { slot: 's3', connectionId: 'c' },
        ]),
        ['b'],
      );
    });

    it('serializes concurrent claims of one slot: each displaces the one before, one holder remains', async () => {
      const node = await fixture.node('n1');
      const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
      const displaced = await Promise.all(ids.map((id) => node.claimSlot('carol|web', id)));
      const previous = displaced.filter((d) => d !== null).map((d) => d.connectionId);
      assert.equal(previous.length, ids.length - 1, 'every claim but the first displaced one');
      assert.equal(new Set(previous).size, previous.length, 'nobody is displaced twice');
      const holder = ids.filter((id) => !previous.includes(id));
      assert.equal(holder.length, 1);
      assert.deepEqual(
        await node.lostSlots(ids.map((connectionId) => ({ slot: 'carol|web', connectionId }))),
        ids.filter((id) => id !== holder[0]),
      );
    });

    it("counts presence: the principal's first connection makes it online, its last one's end offline", async () => {
      const node = await fixture.node('n1');
      assert.equal(await node.connected('dave'), true);
      assert.equal(await node.connected('dave'), false);
      assert.equal(await node.connected('erin'), true);
      assert.deepEqual([...(await node.online(['dave', 'erin', 'nobody']))].sort(), ['dave', 'erin']);
      assert.equal(await node.disconnected('dave'), false);
      assert.equal(await node.disconnected('dave'), true);
      assert.deepEqual([...(await node.online(['dave', 'erin']))], ['erin']);
      assert.deepEqual([...(await node.online([]))], []);
    });

    it('displaces a holder on another node and names that node', { skip: notShared }, async () => {
      const [a, b] = [await fixture.node('a'), await fixture.node('b')];
      assert.equal(await a.claimSlot('fay|web', 'on-a'), null);
      assert.deepEqual(await b.claimSlot('fay|web', 'on-b'), { connectionId: 'on-a', node: 'a' });
      assert.deepEqual(await a.lostSlots([{ slot: 'fay|web', connectionId: 'on-a' }]), ['on-a']);
      assert.deepEqual(await b.lostSlots([{ slot: 'fay|web', connectionId: 'on-b' }]), []);
      await a.releaseSlot('fay|web', 'on-a');
      assert.deepEqual(await a.claimSlot('fay|web', 'back-on-a'), { connectionId: 'on-b', node: 'b' });
    });

    it('serializes concurrent claims of one slot from several nodes', { skip: notShared }, async () => {
      const nodes = [await fixture.node('a'), await fixture.node('b'), await fixture.node('c')];
      const claims = Array.from({ length: 30 }, (_, i) => ({ node: nodes[i % 3] as ClusterState, id: `c${i}` }));
      const displaced = await Promise.all(claims.map(({ node, id }) => node.claimSlot('gus|web', id)));
      const previous = displaced.filter((d) => d !== null).map((d) => d.connectionId);
      assert.equal(previous.length, claims.length - 1);
      assert.equal(new Set(previous).size, previous.length, 'nobody is displaced twice');
    });

    it('gives a claim up when its whileHeld answers false: the holder stays, nobody is displaced', async () => {
      const nodes = target.shared ? [await fixture.node('a'), await fixture.node('b')] : [await fixture.node('a')];
      const [first, second] = [nodes[0] as ClusterState, nodes[nodes.length - 1] as ClusterState];
      assert.equal(await first.claimSlot('joe|web', 'live'), null);
      // A handshake whose socket closed while it waited for the claim.
      assert.equal(await second.claimSlot('joe|web', 'gone', () => false), null, 'displaces nobody');
      assert.deepEqual(await first.lostSlots([{ slot: 'joe|web', connectionId: 'live' }]), [], 'still the holder');
      assert.deepEqual(await second.claimSlot('joe|web', 'next'), { connectionId: 'live', node: 'a' });
      // Given up on a free slot: it stays free.
      assert.equal(await first.claimSlot('kim|web', 'gone', () => false), null);
      assert.equal(await second.claimSlot('kim|web', 'first'), null, 'nobody held it');
    });

    it("runs each claim's whileHeld before any later claim of the slot is decided, on every node", async () => {
      const nodes = target.shared
        ? [await fixture.node('a'), await fixture.node('b'), await fixture.node('c')]
        : [await fixture.node('a')];
      const ids = Array.from({ length: 30 }, (_, i) => `h${i}`);
      const heldOrder: string[] = [];
      const displaced = await Promise.all(
        ids.map((id, i) =>
          (nodes[i % nodes.length] as ClusterState).claimSlot('ivy|web', id, () => heldOrder.push(id) > 0),
        ),
      );
      assert.equal(heldOrder.length, ids.length, 'whileHeld ran once per claim');
      const previousOf = new Map(ids.map((id, i) => [id, displaced[i]?.connectionId ?? null]));
      // The order whileHeld ran in is the order the claims took the slot: each displaced the one before.
      assert.deepEqual(
        heldOrder.map((id) => previousOf.get(id)),
        [null, ...heldOrder.slice(0, -1)],
      );
    });

    it('tells exactly one caller of a change made together with others, in its own direction', async () => {
      const node = await fixture.node('n1');
      // Connects made at once (written together where the state batches them): one goes online.
      const first = await Promise.all([node.connected('gus'), node.connected('gus'), node.connected('gus')]);
      assert.deepEqual(first.filter(Boolean).length, 1, `one online of ${JSON.stringify(first)}`);
      // Down from three to zero with a connect in between: one goes offline, and it is a disconnect.
      const [a, b, c, d] = await Promise.all([
        node.disconnected('gus'),
        node.connected('gus'),
        node.disconnected('gus'),
        node.disconnected('gus'),
      ]);
      assert.equal(b, false, 'a connect never reports the principal going offline');
      assert.equal([a, c, d].filter(Boolean).length, 0, 'still one connection left');
      assert.equal(await node.disconnected('gus'), true);
      assert.deepEqual([...(await node.online(['gus']))], []);
      // A connect and a disconnect at once from offline: online then offline, or nothing to tell.
      const both = await Promise.all([node.connected('hank'), node.disconnected('hank')]);
      assert.equal(both[0], both[1], JSON.stringify(both));
    });

    it('counts presence across nodes and forgets a stopped node', { skip: notShared }, async () => {
      const [a, b] = [await fixture.node('a'), await fixture.node('b')];
      assert.equal(await a.connected('hal'), true);
      assert.equal(await b.connected('hal'), false, 'already online through node a');
      assert.equal(await a.disconnected('hal'), false, 'still online through node b');
      assert.equal(await a.connected('ida'), true);
      await b.stop();
      assert.deepEqual([...(await a.online(['hal', 'ida']))], ['ida'], "node b's connections stopped counting");
    });
  });
}
