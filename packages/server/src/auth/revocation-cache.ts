import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';

export interface PrincipalState {
  tokenVersion: number;
  blocked: boolean;
}

const UNKNOWN_PRINCIPAL: PrincipalState = { tokenVersion: 0, blocked: false };

interface Entry<V> {
  value: V;
  /** Clock time after which the store is asked again. */
  expiresAt: number;
}

/**
 * What the verify path needs from the store — a principal's token version and blocked
 * flag, and whether a login session was revoked — kept in bounded LRU maps so a handshake
 * rarely touches the store.
 *
 * Control events (see ControlChannel) update the entries on every node at once while the
 * broker carries them; they are never replayed, so every entry also expires after `ttlMs`
 * and is read again from the store (the truth): that bounds how long a node that missed an
 * event keeps accepting a revoked token. What the cache learns is monotonic: a token version
 * never goes down, and within a version "blocked" stays until the unblock event or the
 * entry's expiry (a store read that raced a block cannot undo it). A revoked session is
 * never un-revoked, so that answer is kept without expiry.
 */
export class RevocationCache {
  private readonly principals = new Map<string, Entry<PrincipalState>>();
  private readonly sessions = new Map<string, Entry<boolean>>();

  constructor(
    private readonly store: Pick<Store, 'getPrincipal' | 'getLoginSession' | 'revocationState'>,
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly maxEntries = 50_000,
  ) {}

  /**
   * Both answers a token check needs: one store read when neither is cached (a principal's first
   * handshake on this node), else the missing one alone.
   */
  async check(principalId: string, sid: string): Promise<{ principal: PrincipalState; sessionRevoked: boolean }> {
    if (this.live(this.principals, principalId) || this.live(this.sessions, sid)) {
      const [state, sessionRevoked] = await Promise.all([this.principal(principalId), this.sessionRevoked(sid)]);
      return { principal: state, sessionRevoked };
    }
    const read = await this.store.revocationState(principalId, sid);
    return {
      principal: this.mergePrincipal(principalId, read.principal ?? UNKNOWN_PRINCIPAL, false),
      sessionRevoked: this.mergeSession(sid, read.sessionRevoked),
    };
  }

  async principal(id: string): Promise<PrincipalState> {
    const cached = this.live(this.principals, id);
    if (cached) return cached.value;
    const record = await this.store.getPrincipal(id);
    // Tokens minted for principals the store does not know (an app's own signer) are allowed.
    const state = record ? { tokenVersion: record.tokenVersion, blocked: record.blocked } : UNKNOWN_PRINCIPAL;
    return this.mergePrincipal(id, state, false);
  }

  async sessionRevoked(sid: string): Promise<boolean> {
    const cached = this.live(this.sessions, sid);
    if (cached) return cached.value;
    const session = await this.store.getLoginSession(sid);
    return this.mergeSession(sid, session?.revokedAt != null);
  }

  /**
   * A principal's state as a committed change reported it (this node's own write, or a
   * control event): a higher token version replaces, an equal one may block or unblock.
   */
  setPrincipal(id: string, state: PrincipalState): void {
    this.mergePrincipal(id, state, true);
  }

  forgetPrincipal(id: string): void {
    this.principals.delete(id);
  }

  markSessionRevoked(sid: string): void {
    this.remember(this.sessions, sid, true, Number.POSITIVE_INFINITY);
  }

  /**
   * Drops every entry that could be stale (after the broker came back: events published
   * meanwhile are lost). Revoked sessions stay: that answer cannot change.
   */
  clear(): void {
    this.principals.clear();
    for (const [sid, entry] of this.sessions) if (!entry.value) this.sessions.delete(sid);
  }

  /**
   * `authoritative`: from a committed change, so an unblock at the same version applies;
   * a store read (not authoritative) can only add a block or raise the version.
   */
  private mergePrincipal(id: string, next: PrincipalState, authoritative: boolean): PrincipalState {
    const current = this.live(this.principals, id)?.value;
    let value = next;
    if (current) {
      if (current.tokenVersion > next.tokenVersion) value = current;
      else if (current.tokenVersion === next.tokenVersion && !authoritative)
        value = { tokenVersion: next.tokenVersion, blocked: current.blocked || next.blocked };
    }
    this.remember(this.principals, id, value, this.expiry());
    return value;
  }

  /** A store read of a session: an event may have marked it revoked while the store answered. */
  private mergeSession(sid: string, revoked: boolean): boolean {
    if (this.sessions.get(sid)?.value === true) return true;
    this.remember(this.sessions, sid, revoked, revoked ? Number.POSITIVE_INFINITY : this.expiry());
    return revoked;
  }

  private expiry(): number {
    return this.clock.now() + this.ttlMs;
  }

  private live<V>(map: Map<string, Entry<V>>, key: string): Entry<V> | undefined {
    const entry = map.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > this.clock.now()) return entry;
    map.delete(key);
    return undefined;
  }

  private remember<V>(map: Map<string, Entry<V>>, key: string, value: V, expiresAt: number): void {
    map.delete(key);
    if (map.size >= this.maxEntries) map.delete(map.keys().next().value as string);
    map.set(key, { value, expiresAt });
  }
}
