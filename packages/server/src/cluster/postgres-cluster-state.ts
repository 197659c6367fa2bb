import type pg from 'pg';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { ClusterState, SlotHolder } from './cluster-state.js';
import { SerialBatches } from './serial-batches.js';

export interface PostgresClusterStateOptions {
  /** The node's PostgreSQL pool (the store's): borrowed, never ended here. */
  pool: pg.Pool;
  node: string;
  /** How often this node writes its heartbeat (on `clock`). */
  heartbeatMs: number;
  /** A node whose heartbeat is older than this is dead: its presence and slots stop counting. */
  liveWindowMs: number;
  clock: Clock;
  log: Logger;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS gh_nodes (node TEXT PRIMARY KEY, heartbeat_at TIMESTAMPTZ NOT NULL);
  CREATE TABLE IF NOT EXISTS gh_device_slots (
    slot TEXT PRIMARY KEY, connection_id TEXT NOT NULL, node TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL DEFAULT now());
  CREATE TABLE IF NOT EXISTS gh_presence (
    principal_id TEXT NOT NULL, node TEXT NOT NULL, connections INTEGER NOT NULL,
    PRIMARY KEY (principal_id, node));
  CREATE INDEX IF NOT EXISTS gh_presence_node ON gh_presence (node);
  ALTER TABLE gh_device_slots
    ADD COLUMN IF NOT EXISTS previous_connection_id TEXT, ADD COLUMN IF NOT EXISTS previous_node TEXT;`;

/**
 * Cluster state in PostgreSQL (the store every node already shares). A node writes its
 * heartbeat every `heartbeatMs`; presence rows of a node whose heartbeat is older than
 * `liveWindowMs` do not count, so a crashed node's connections stop counting within one
 * window. The first live node to notice a dead one deletes its rows (exactly one does: the
 * DELETE of its node row decides) and reports the principals that went offline with it. A
 * node that finds its own row gone (it was paused longer than the window) writes back its
 * presence and slots from its local counts. A slot claim holds the slot's row lock until it
 * commits, so concurrent claims on different nodes are serialized.
 */
export class PostgresClusterState implements ClusterState {
  private readonly pool: pg.Pool;
  private readonly node: string;
  private readonly heartbeatMs: number;
  private readonly liveWindowMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private stopHeartbeat: (() => void) | null = null;
  /** The heartbeat under way, so `stop()` waits for it rather than racing its queries. */
  private beating: Promise<void> | null = null;
  /** This node's own share, to write back if its rows were reaped while it was alive. */
  private readonly localPresence = new Map<string, number>();
  private readonly localSlots = new Map<string, string>();
  /** Principals whose count changed here since it was last written. */
  private readonly presenceDirty = new Set<string>();
  /** Principals this node's written rows count as connected here. */
  private readonly writtenPresence = new Set<string>();
  /**
   * Presence rows are written in batches (SerialBatches): this node's rows are its own, so it
   * writes absolute counts, and a failed write leaves its principals marked for the next
   * write, or the heartbeat's, to put right.
   */
  private readonly presenceWrites = new SerialBatches(() => this.writeDirtyPresence());
  /** Slot rows of closed sockets, deleted in batches too (a failed delete is tried again). */
  private pendingReleases: { slot: string; connectionId: string }[] = [];
  private readonly slotReleases = new SerialBatches(() => this.deleteReleasedSlots());
  private nodeLostHandlers: ((offline: string[]) => void)[] = [];

  constructor(options: PostgresClusterStateOptions) {
    this.pool = options.pool;
    this.node = options.node;
    this.heartbeatMs = options.heartbeatMs;
    this.liveWindowMs = options.liveWindowMs;
    this.clock = options.clock;
    this.log = options.log;
  }

  async start(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT pg_advisory_xact_lock(hashtext('gatehouse-cluster-schema'))");
      await client.query(SCHEMA);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    // A node that starts has no connection yet: what its id left behind (a crash, then a
    // restart with the same node id) must not count again once its heartbeat is fresh.
    await this.pool.query('DELETE FROM gh_presence WHERE node = $1', [this.node]);
    await this.pool.query('DELETE FROM gh_device_slots WHERE node = $1', [this.node]);
    await this.heartbeat();
    this.stopHeartbeat = this.clock.every(this.heartbeatMs, () => {
      // One at a time: a slow database does not pile heartbeats up.
      if (this.beating) return;
      this.beating = this.heartbeat()
        .catch((err) => this.log.warn({ err }, 'cluster state: heartbeat failed'))
        .finally(() => {
          this.beating = null;
        });
    });
  }

  async liveNodes(): Promise<string[]> {
    const { rows } = await this.pool.query<{ node: string }>(
      `SELECT node FROM gh_nodes WHERE heartbeat_at >= now() - ($1 || ' milliseconds')::interval ORDER BY node`,
      [String(this.liveWindowMs)],
    );
    return rows.map((r) => r.node);
  }

  onNodeLost(handler: (offlinePrincipalIds: string[]) => void): void {
    this.nodeLostHandlers.push(handler);
  }

  private async heartbeat(): Promise<void> {
    const { rows } = await this.pool.query<{ inserted: boolean }>(
      `INSERT INTO gh_nodes (node, heartbeat_at) VALUES ($1, now())
       ON CONFLICT (node) DO UPDATE SET heartbeat_at = now() RETURNING (xmax = 0) AS inserted`,
      [this.node],
    );
    if (rows[0]?.inserted && (this.localPresence.size > 0 || this.localSlots.size > 0)) await this.restoreOwnRows();
    // Counts a failed write left behind (nothing else may change them soon).
    if (this.presenceDirty.size > 0)
      await this.presenceWrites.run().catch((err) => this.log.warn({ err }, 'cluster state: presence write failed'));
    if (this.pendingReleases.length > 0)
      await this.slotReleases.run().catch((err) => this.log.warn({ err }, 'cluster state: slot release failed'));
    await this.reapDeadNodes();
  }

  /** Another node took us for dead and deleted our rows: put back what this node holds. */
  private async restoreOwnRows(): Promise<void> {
    this.log.warn('cluster state: this node was taken for dead; restoring its presence and slots');
    // Its rows are gone: every principal counted here is written again, as any change is.
    this.writtenPresence.clear();
    for (const id of this.localPresence.keys()) this.presenceDirty.add(id);
    await this.presenceWrites.run();
    await this.pool.query(
      `INSERT INTO gh_device_slots (slot, connection_id, node)
       SELECT s, c, $3 FROM UNNEST($1::text[], $2::text[]) AS t(s, c)
       ON CONFLICT (slot) DO NOTHING`,
      [[...this.localSlots.keys()], [...this.localSlots.values()], this.node],
    );
  }

  private async reapDeadNodes(): Promise<void> {
    const dead = await this.pool.query<{ node: string }>(
      `DELETE FROM gh_nodes WHERE node <> $1 AND heartbeat_at < now() - ($2 || ' milliseconds')::interval
       RETURNING node`,
      [this.node, String(this.liveWindowMs)],
    );
    if (dead.rowCount === 0) return;
    const nodes = dead.rows.map((r) => r.node);
    const gone = await this.pool.query<{ principal_id: string }>(
      'DELETE FROM gh_presence WHERE node = ANY($1) RETURNING principal_id',
      [nodes],
    );
    await this.pool.query('DELETE FROM gh_device_slots WHERE node = ANY($1)', [nodes]);
    const candidates = [...new Set(gone.rows.map((r) => r.principal_id))];
    const stillOnline = await this.online(candidates);
    const offline = candidates.filter((id) => !stillOnline.has(id));
    this.log.warn({ nodes, offline: offline.length }, 'cluster state: reaped dead nodes');
    if (offline.length > 0) for (const handler of this.nodeLostHandlers) handler(offline);
  }

  /** Stops the heartbeat and removes this node's rows; the pool stays open (its owner ends it). */
  async stop(): Promise<void> {
    this.stopHeartbeat?.();
    this.stopHeartbeat = null;
    await this.beating;
    await this.presenceWrites.settled();
    await this.slotReleases.settled();
    await this.pool.query('DELETE FROM gh_presence WHERE node = $1', [this.node]).catch(() => {});
    await this.pool.query('DELETE FROM gh_device_slots WHERE node = $1', [this.node]).catch(() => {});
    await this.pool.query('DELETE FROM gh_nodes WHERE node = $1', [this.node]).catch(() => {});
  }

  /**
   * One statement claims the slot and reads whom it took it from: the upsert locks the row
   * (concurrent claims of the slot, on any node, wait for this transaction), and its
   * `previous_*` columns keep the holder it replaced. The lock is held until COMMIT, so
   * `whileHeld` runs before any later claim of the slot is decided.
   */
  async claimSlot(slot: string, connectionId: string, whileHeld?: () => boolean): Promise<SlotHolder | null> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const claimed = await client.query<{ previous_connection_id: string | null; previous_node: string | null }>(
        `INSERT INTO gh_device_slots (slot, connection_id, node, claimed_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (slot) DO UPDATE SET
           previous_connection_id = gh_device_slots.connection_id, previous_node = gh_device_slots.node,
           connection_id = $2, node = $3, claimed_at = now()
         RETURNING previous_connection_id, previous_node`,
        [slot, connectionId, this.node],
      );
      if (whileHeld && !whileHeld()) {
        // Given up: the holder stays who it was.
        await client.query('ROLLBACK');
        return null;
      }
      await client.query('COMMIT');
      this.localSlots.set(slot, connectionId);
      const row = claimed.rows[0];
      return row?.previous_connection_id && row.previous_node && row.previous_connection_id !== connectionId
        ? { connectionId: row.previous_connection_id, node: row.previous_node }
        : null;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async releaseSlot(slot: string, connectionId: string): Promise<void> {
    if (this.localSlots.get(slot) === connectionId) this.localSlots.delete(slot);
    this.pendingReleases.push({ slot, connectionId });
    await this.slotReleases.run();
  }

  private async deleteReleasedSlots(): Promise<void> {
    const releases = this.pendingReleases;
    this.pendingReleases = [];
    if (releases.length === 0) return;
    try {
      await this.pool.query(
        `DELETE FROM gh_device_slots d USING UNNEST($1::text[], $2::text[]) AS r(slot, connection_id)
         WHERE d.slot = r.slot AND d.connection_id = r.connection_id`,
        [releases.map((r) => r.slot), releases.map((r) => r.connectionId)],
      );
    } catch (err) {
      this.pendingReleases.push(...releases);
      throw err;
    }
  }

  private liveNodesClause(param: number): string {
    return `node IN (SELECT node FROM gh_nodes WHERE heartbeat_at > now() - ($${param} || ' milliseconds')::interval)`;
  }

  connected(principalId: string): Promise<boolean> {
    this.localPresence.set(principalId, (this.localPresence.get(principalId) ?? 0) + 1);
    return this.presenceChange(principalId, 'online');
  }

  disconnected(principalId: string): Promise<boolean> {
    const left = (this.localPresence.get(principalId) ?? 1) - 1;
    if (left > 0) this.localPresence.set(principalId, left);
    else this.localPresence.delete(principalId);
    return this.presenceChange(principalId, 'offline');
  }

  /**
   * Resolves true for the one caller whose change of `principalId` made the principal go
   * `direction` (online: its first connection on any live node; offline: its last one gone),
   * once this node's count is written.
   */
  private async presenceChange(principalId: string, direction: 'online' | 'offline'): Promise<boolean> {
    this.presenceDirty.add(principalId);
    const transitions = await this.presenceWrites.run();
    if (transitions.get(principalId) !== direction) return false;
    // Told once: of several changes written together, the first caller announces.
    transitions.delete(principalId);
    return true;
  }

  private async writeDirtyPresence(): Promise<Map<string, 'online' | 'offline'>> {
    const ids = [...this.presenceDirty];
    this.presenceDirty.clear();
    const transitions = new Map<string, 'online' | 'offline'>();
    if (ids.length === 0) return transitions;
    const counts = ids.map((id) => this.localPresence.get(id) ?? 0);
    let othersOnline: Set<string>;
    try {
      // The main query does not see the CTEs' writes, and reads only the other nodes' rows.
      const { rows } = await this.pool.query<{ principal_id: string }>(
        `WITH counted AS (SELECT * FROM UNNEST($1::text[], $2::int[]) AS t(principal_id, connections)),
         upserted AS (
           INSERT INTO gh_presence (principal_id, node, connections)
           SELECT principal_id, $3, connections FROM counted WHERE connections > 0
           ON CONFLICT (principal_id, node) DO UPDATE SET connections = EXCLUDED.connections),
         removed AS (
           DELETE FROM gh_presence p USING counted c
           WHERE p.principal_id = c.principal_id AND p.node = $3 AND c.connections <= 0)
         SELECT DISTINCT principal_id FROM gh_presence
         WHERE principal_id = ANY($1) AND node <> $3 AND connections > 0 AND ${this.liveNodesClause(4)}`,
        [ids, counts, this.node, String(this.liveWindowMs)],
      );
      othersOnline = new Set(rows.map((r) => r.principal_id));
    } catch (err) {
      for (const id of ids) this.presenceDirty.add(id);
      throw err;
    }
    ids.forEach((id, i) => {
      const before = this.writtenPresence.has(id);
      const after = (counts[i] as number) > 0;
      if (after) this.writtenPresence.add(id);
      else this.writtenPresence.delete(id);
      if (before !== after && !othersOnline.has(id)) transitions.set(id, after ? 'online' : 'offline');
    });
    return transitions;
  }

  async online(principalIds: string[]): Promise<Set<string>> {
    if (principalIds.length === 0) return new Set();
    const { rows } = await this.pool.query<{ principal_id: string }>(
      `SELECT DISTINCT principal_id FROM gh_presence
       WHERE principal_id = ANY($1) AND connections > 0 AND ${this.liveNodesClause(2)}`,
      [principalIds, String(this.liveWindowMs)],
    );
    return new Set(rows.map((r) => r.principal_id));
  }
  async lostSlots(held: { slot: string; connectionId: string }[]): Promise<string[]> {
    if (held.length === 0) return [];
    const { rows } = await this.pool.query<{ slot: string; connection_id: string }>(
      'SELECT slot, connection_id FROM gh_device_slots WHERE slot = ANY($1)',
      [held.map((h) => h.slot)],
    );
    const holder = new Map(rows.map((r) => [r.slot, r.connection_id]));
    return held
      .filter(({ slot, connectionId }) => holder.has(slot) && holder.get(slot) !== connectionId)
      .map((h) => h.connectionId);
  }
}
