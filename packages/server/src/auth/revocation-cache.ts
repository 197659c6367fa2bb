import type { Store } from '../store/store.js';

interface PrincipalState {
  tokenVersion: number;
  blocked: boolean;
}

const UNKNOWN_PRINCIPAL: PrincipalState = { tokenVersion: 0, blocked: false };

/**
 * What the verify path needs from the store — a principal's token version and blocked
 * flag, and whether a login session was revoked — kept in bounded LRU maps so a
 * handshake rarely touches the store. Entries are replaced by control events
 * (see ControlChannel) on every node, so a revocation is seen at once.
 */
export class RevocationCache {
  private readonly principals = new Map<string, PrincipalState>();
  private readonly sessions = new Map<string, boolean>();

  constructor(
    private readonly store: Store,
    private readonly maxEntries = 50_000,
  ) {}

  async principal(id: string): Promise<PrincipalState> {
    const cached = this.principals.get(id);
    if (cached) return cached;
    const record = await this.store.getPrincipal(id);
    // Tokens minted for principals the store does not know (an app's own signer) are allowed.
    const state = record ? { tokenVersion: record.tokenVersion, blocked: record.blocked } : UNKNOWN_PRINCIPAL;
    this.remember(this.principals, id, state);
    return state;
  }

  async sessionRevoked(sid: string): Promise<boolean> {
    const cached = this.sessions.get(sid);
    if (cached !== undefined) return cached;
    const session = await this.store.getLoginSession(sid);
    const revoked = session?.revokedAt != null;
    this.remember(this.sessions, sid, revoked);
    return revoked;
  }

  setPrincipal(id: string, state: PrincipalState): void {
    this.principals.delete(id);
    this.remember(this.principals, id, state);
  }

  forgetPrincipal(id: string): void {
    this.principals.delete(id);
  }

  markSessionRevoked(sid: string): void {
    this.sessions.delete(sid);
    this.remember(this.sessions, sid, true);
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    if (map.size >= this.maxEntries) map.delete(map.keys().next().value as string);
    map.set(key, value);
  }
}
