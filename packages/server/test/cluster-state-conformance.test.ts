import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ManualClock } from '../src/clock.js';
import type { ClusterState } from '../src/cluster/cluster-state.js';
import { MemoryClusterState } from '../src/cluster/memory-cluster-state.js';
import { PostgresClusterState } from '../src/cluster/postgres-cluster-state.js';
import { createLogger } from '../src/logger.js';
import { clusterStateConformance } from './helpers/cluster-state-conformance.js';
import { createTestDatabase, POSTGRES_SKIP, TcpProxy, type TestDatabase } from './helpers/postgres.js';

clusterStateConformance({
  name: 'MemoryClusterState',
  shared: false,
  async open() {
    const nodes: ClusterState[] = [];
    return {
      async node(id) {
        const node = new MemoryClusterState(id);
        await node.start();
        nodes.push(node);
        return node;
      },
      async cleanup() {
        for (const node of nodes) await node.stop();
      },
    };
  },
});

/** Nodes of one cluster on one fresh database, each with a pool of its own (as separate processes have). */
async function postgresCluster(clock = new ManualClock()) {
  const db = await createTestDatabase();
  const opened: { state: PostgresClusterState; pool: pg.Pool }[] = [];
  return {
    db,
    clock,
    async node(id: string, heartbeatMs = 1000) {
      const pool = new pg.Pool({ connectionString: db.url, max: 3 });
      // An idle connection ended by the server is the pool's to replace (as the store's pool
      // does), not an uncaught error that takes the whole file down.
      pool.on('error', () => {});
      const state = new PostgresClusterState({
        pool,
        node: id,
        heartbeatMs,
        // Long: these tests never let a node die by age.
        liveWindowMs: 600_000,
        clock,
        log: createLogger('silent'),
      });
      opened.push({ state, pool });
      await state.start();
      return state;
    },
    async cleanup() {
      for (const { state, pool } of opened.splice(0)) {
        await state.stop();
        await pool.end();
      }
      await db.drop();
    },
  };
}

clusterStateConformance({
  name: 'PostgresClusterState',
  skip: POSTGRES_SKIP,
  shared: true,
  open: () => postgresCluster(),
});

describe('PostgresClusterState on the injected clock', { skip: POSTGRES_SKIP }, () => {
  let db: TestDatabase;
  let cluster: Awaited<ReturnType<typeof postgresCluster>>;
  let observer: pg.Pool;
  before(async () => {
    cluster = await postgresCluster();
    db = cluster.db;
    observer = new pg.Pool({ connectionString: db.url, max: 1 });
  });
  after(async () => {
    await observer.end();
    await cluster.cleanup();
  });

  const heartbeats = async () =>
    (await observer.query<{ n: string }>("SELECT COUNT(*) AS n FROM gh_nodes WHERE node = 'beat'")).rows[0]?.n;
  const lastBeat = async () =>
    (await observer.query<{ at: Date }>("SELECT heartbeat_at AS at FROM gh_nodes WHERE node = 'beat'")).rows[0]?.at;

  it('writes its heartbeat when the clock says so, not on a timer of its own', async () => {
    // An interval no real timer would reach within this test.
    await cluster.node('beat', 60_000);
    assert.equal(await heartbeats(), '1', 'the start writes the first heartbeat');
    const first = await lastBeat();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await lastBeat(), first, 'no heartbeat while the clock stands still');
    cluster.clock.advance(60_000);
    let next = first;
    for (let i = 0; i < 100 && next?.getTime() === first?.getTime(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      next = await lastBeat();
    }
    assert.ok(next && first && next > first, 'advancing the clock by one interval wrote a heartbeat');
  });

  it('writes back its presence and slots when another node took it for dead and deleted them', async () => {
    const state = await cluster.node('revived', 60_000);
    assert.equal(await state.connected('mia'), true);
    assert.equal(await state.connected('mia'), false);
    assert.equal(await state.claimSlot('mia|web', 'c-mia'), null);
    // What a reaping node does to a node whose heartbeat it saw as too old.
    await observer.query("DELETE FROM gh_nodes WHERE node = 'revived'");
    await observer.query("DELETE FROM gh_presence WHERE node = 'revived'");
    await observer.query("DELETE FROM gh_device_slots WHERE node = 'revived'");
    const rows = async () => ({
      presence: (await observer.query("SELECT principal_id, connections FROM gh_presence WHERE node = 'revived'")).rows,
      slots: (await observer.query("SELECT slot, connection_id FROM gh_device_slots WHERE node = 'revived'")).rows,
    });
    cluster.clock.advance(60_000);
    for (let i = 0; i < 100 && (await rows()).slots.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await rows(), {
      presence: [{ principal_id: 'mia', connections: 2 }],
      slots: [{ slot: 'mia|web', connection_id: 'c-mia' }],
    });
    // Counted as written: the last connection's end is the principal going offline.
    assert.equal(await state.disconnected('mia'), false);
    assert.equal(await state.disconnected('mia'), true);
    assert.deepEqual((await rows()).presence, []);
  });

  it('puts its presence rows right after a failed write, at the next heartbeat', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5432);
    await proxy.up();
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const pool = new pg.Pool({ connectionString: viaProxy.toString(), max: 2, connectionTimeoutMillis: 2000 });
    pool.on('error', () => {});
    const state = new PostgresClusterState({
      pool,
      node: 'flaky',
      heartbeatMs: 60_000,
      liveWindowMs: 600_000,
      clock: cluster.clock,
      log: createLogger('silent'),
    });
    await state.start();
    const rows = async () =>
      (
        await observer.query<{ principal_id: string; connections: number }>(
          "SELECT principal_id, connections FROM gh_presence WHERE node = 'flaky' ORDER BY principal_id",
        )
      ).rows;
    try {
      assert.equal(await state.connected('kim'), true);
      await proxy.down();
      await assert.rejects(state.connected('kim'));
      await assert.rejects(state.connected('lee'));
      assert.deepEqual(await rows(), [{ principal_id: 'kim', connections: 1 }], 'the database missed both');
      await proxy.up();
      cluster.clock.advance(60_000);
      for (let i = 0; i < 100 && (await rows()).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await rows(), [
        { principal_id: 'kim', connections: 2 },
        { principal_id: 'lee', connections: 1 },
      ]);
    } finally {
      await state.stop();
      await pool.end();
      await proxy.down();
    }
  });
});
