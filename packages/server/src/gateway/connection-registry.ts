import { CloseCode } from '@gatehouse/protocol';
import type { AuthContext } from '../auth/auth-service.js';
import type { ConnectionPolicy } from '../config.js';
import type { Connection } from './connection.js';

/**
 * The connections under one key: the connection itself while there is one (the common
 * case, and a Set costs ~160 bytes per principal and per session), a Set once there are more.
 */
type Bucket = Connection | Set<Connection>;

const addTo = (map: Map<string, Bucket>, key: string, conn: Connection): void => {
  const bucket = map.get(key);
  if (bucket === undefined) map.set(key, conn);
  else if (bucket instanceof Set) bucket.add(conn);
  else if (bucket !== conn) map.set(key, new Set([bucket, conn]));
};

const removeFrom = (map: Map<string, Bucket>, key: string, conn: Connection): void => {
  const bucket = map.get(key);
  if (bucket === conn) map.delete(key);
  else if (bucket instanceof Set) {
    bucket.delete(conn);
    if (bucket.size === 0) map.delete(key);
  }
};

const toArray = (bucket: Bucket | undefined): Connection[] =>
  bucket === undefined ? [] : bucket instanceof Set ? [...bucket] : [bucket];

/** Sends `kicked` and closes with the code that belongs to the reason. */
export function kick(conn: Connection, reason: 'REPLACED' | 'REVOKED' | 'KICKED' | 'BLOCKED'): void {
  if (conn.closed) return;
  conn.send({ type: 'kicked', code: 200, reason });
  conn.close(reason === 'REPLACED' ? CloseCode.REPLACED : CloseCode.REVOKED, reason);
}

/**
 * This node's live connections, indexed by principal, login session and device slot.
 *
 * Slots enforce the per-kind policy: the newest connection takes the slot and the one it
 * replaces is closed with 4409. A connection only ever removes the slot entry that still
 * points at itself, so an old socket closing late never frees (or takes) the slot of the
 * device's new socket: a reconnect race cannot lock a device out.
 */
export class ConnectionRegistry {
  readonly all = new Set<Connection>();
  private readonly byConnectionId = new Map<string, Connection>();
  private readonly byPrincipal = new Map<string, Bucket>();
  private readonly bySid = new Map<string, Bucket>();
  private readonly bySlot = new Map<string, Connection>();
  /** Authenticated agent connections (support notifications go to all of them). */
  readonly agents = new Set<Connection>();
  private unauthenticatedCount = 0;

  constructor(private readonly policies: Record<string, ConnectionPolicy>) {}

  get size(): number {
    return this.all.size;
  }

  get unauthenticated(): number {
    return this.unauthenticatedCount;
  }

  add(conn: Connection): void {
    this.all.add(conn);
    this.byConnectionId.set(conn.id, conn);
    if (!conn.auth) this.unauthenticatedCount++;
  }

  /** The device slot a connection of this principal and device type takes under its kind's policy (null: unlimited). */
  slotOf(auth: Pick<AuthContext, 'principal'>, deviceType: string): string | null {
    const policy = this.policies[auth.principal.kind] ?? 'unlimited';
    if (policy === 'unlimited') return null;
    return policy === 'single' ? auth.principal.id : `${auth.principal.id}\n${deviceType}`;
  }

  /**
   * Indexes a connection that just authenticated and claims its slot. Returns the
   * connection it replaced (already kicked with REPLACED), if any.
   */
  authenticated(conn: Connection, wasUnauthenticated: boolean): Connection | null {
    const auth = conn.auth;
    if (!auth) throw new Error('authenticated() needs conn.auth');
    if (wasUnauthenticated) this.unauthenticatedCount--;
    addTo(this.byPrincipal, auth.principal.id, conn);
    addTo(this.bySid, auth.sid, conn);
    if (auth.principal.kind === 'agent') this.agents.add(conn);
    const slot = this.slotOf(auth, conn.deviceType);
    if (!slot) return null;
    conn.slot = slot;
    const previous = this.bySlot.get(slot);
    this.bySlot.set(slot, conn);
    if (previous && previous !== conn) {
      previous.slot = null;
      kick(previous, 'REPLACED');
      return previous;
    }
    return null;
  }

  /** Forgets a closed connection. Safe to call twice. */
  remove(conn: Connection): void {
    if (!this.all.delete(conn)) return;
    this.byConnectionId.delete(conn.id);
    const auth = conn.auth;
    if (!auth) {
      this.unauthenticatedCount--;
      return;
    }
    removeFrom(this.byPrincipal, auth.principal.id, conn);
    removeFrom(this.bySid, auth.sid, conn);
    this.agents.delete(conn);
    if (conn.slot && this.bySlot.get(conn.slot) === conn) this.bySlot.delete(conn.slot);
  }

  /** Re-indexes a connection whose login session changed (in-band `refresh` with a new session). */
  changeSid(conn: Connection, oldSid: string, newSid: string): void {
    removeFrom(this.bySid, oldSid, conn);
    addTo(this.bySid, newSid, conn);
  }

  /**
   * The principal's connections without copying (for fan-out): the connection itself when it
   * has one, the live set (do not modify) when it has several, undefined when it has none here.
   */
  connectionsOf(id: string): Connection | ReadonlySet<Connection> | undefined {
    return this.byPrincipal.get(id);
  }

  ofPrincipal(id: string): Connection[] {
    return toArray(this.byPrincipal.get(id));
  }

  ofSession(sid: string): Connection[] {
    return toArray(this.bySid.get(sid));
  }

  byId(connectionId: string): Connection | undefined {
    return this.byConnectionId.get(connectionId);
  }

  principalIds(): IterableIterator<string> {
    return this.byPrincipal.keys();
  }
}
