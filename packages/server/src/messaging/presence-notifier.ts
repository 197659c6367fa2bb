import type { Logger } from 'pino';
import type { ClusterState } from '../cluster/cluster-state.js';
import type { Connection } from '../gateway/connection.js';
import type { Store } from '../store/store.js';
import type { Delivery } from './delivery.js';

/** How many peers one presence change is sent to at most. */
const MAX_PEERS = 1000;

/**
 * Presence (SPEC §4, §7): a principal is online while it has a connection on any live node.
 * When that changes, `{"type":"presence","user_id","online"}` goes to the principals who share
 * a direct conversation or a support session with it (group members are not told: a group of
 * thousands would turn every login into a storm).
 */
export class PresenceNotifier {
  /** Updates under way: a shutdown waits for them before the store and the broker close. */
  private readonly pending = new Set<Promise<void>>();
  /** The tail of the announcements' queue. */
  private announcing: Promise<void> = Promise.resolve();

  constructor(
    private readonly cluster: ClusterState,
    private readonly store: Store,
    private readonly delivery: Delivery,
    private readonly log: Logger,
  ) {
    // Principals whose only node died get their `offline` from the node that noticed.
    cluster.onNodeLost((offline) => {
      for (const id of offline) this.track(this.announce(id, false));
    });
  }

  connected(conn: Connection): void {
    const id = conn.principal?.id;
    if (id) this.track(this.update(id, true));
  }

  disconnected(conn: Connection): void {
    const id = conn.principal?.id;
    if (id) this.track(this.update(id, false));
  }

  /** Resolves when the updates under way are done (the sockets closed at shutdown start some). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private track(update: Promise<void>): void {
    const tracked = update.catch((err) => this.log.warn({ err }, 'presence update failed'));
    this.pending.add(tracked);
    tracked.finally(() => this.pending.delete(tracked));
  }

  private async update(principalId: string, online: boolean): Promise<void> {
    const changed = online ? await this.cluster.connected(principalId) : await this.cluster.disconnected(principalId);
    if (changed) await this.announce(principalId, online);
  }

  /**
   * Announcements go out one at a time, in the order the changes were seen: a burst (every
   * principal of a node that died, then each of them coming back elsewhere) waits here instead
   * of crowding the store's pool out from under the handshakes, and a principal's `offline`
   * never overtakes its later `online`.
   */
  private announce(principalId: string, online: boolean): Promise<void> {
    const next = this.announcing.then(() => this.announceNow(principalId, online));
    this.announcing = next.catch(() => {});
    return next;
  }

  private async announceNow(principalId: string, online: boolean): Promise<void> {
    const peers = await this.store.peersOf(principalId, MAX_PEERS);
    if (peers.length > 0)
      this.delivery.publishEvent(peers, JSON.stringify({ type: 'presence', code: 200, user_id: principalId, online }));
  }
}
