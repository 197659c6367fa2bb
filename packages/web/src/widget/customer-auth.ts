/** The anonymous customer's credentials, as the public routes return them. */
export interface CustomerCredentials {
  customerId: string;
  token: string;
  refreshToken: string;
  /** Access-token expiry, ms since the epoch. */
  expiresAt: number;
  sessionId: string;
  /** The session was closed by the agent: the next open starts a new one. */
  closed?: boolean;
}

/** Thrown when the stored credentials are dead (refresh refused): the customer starts afresh. */
export class CredentialsGone extends Error {}

const LOCK = 'gatehouse-widget-refresh';

/**
 * The customer's token pair in localStorage, so a reload continues the same conversation.
 * Refresh tokens rotate and a spent one revokes the login session, so a refresh runs under a
 * Web Lock shared by every tab of the page's origin, re-reads the storage inside the lock (another
 * tab or the page before a reload may have rotated already) and stores the new pair before
 * anything else uses it.
 */
export class CustomerAuth {
  constructor(
    private readonly apiUrl: string,
    private readonly storageKey: string,
  ) {}

  load(): CustomerCredentials | null {
    try {
      const raw = localStorage.getItem(this.storageKey);
      const parsed = raw ? (JSON.parse(raw) as CustomerCredentials) : null;
      return parsed?.customerId && parsed.refreshToken ? parsed : null;
    } catch {
      return null;
    }
  }

  save(credentials: CustomerCredentials): void {
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(credentials));
    } catch {
      // Storage full or denied (private mode): the chat works, a reload starts afresh.
    }
  }

  clear(): void {
    try {
      localStorage.removeItem(this.storageKey);
    } catch {}
  }

  /** A new anonymous customer and its support session (`POST /api/v1/public/customer-token`). */
  async start(name: string, channel: string, email?: string): Promise<CustomerCredentials> {
    const body = await this.post('/api/v1/public/customer-token', { name, channel, ...(email ? { email } : {}) });
    const credentials: CustomerCredentials = {
      customerId: body.customerId,
      token: body.token,
      refreshToken: body.refreshToken,
      expiresAt: body.expiresAt,
      sessionId: body.sessionId,
    };
    this.save(credentials);
    return credentials;
  }

  /**
   * A fresh access token to replace `stale` (the one the caller holds). Returns what another tab
   * stored meanwhile when that is newer and still valid; else rotates the refresh token.
   * `nextSession`: the stored session was closed, rotate to learn the next one.
   */
  refresh(stale: string | null, options: { nextSession?: boolean } = {}): Promise<CustomerCredentials> {
    const run = async () => {
      const current = this.load();
      if (!current) throw new CredentialsGone('no stored customer');
      const rotatedElsewhere = current.token !== stale && current.expiresAt > Date.now() + 30_000;
      // After a close the route is also how the customer gets its next session.
      if (rotatedElsewhere && !(options.nextSession && current.closed)) return current;
      let body: any;
      try {
        body = await this.post(`/api/v1/customers/${encodeURIComponent(current.customerId)}/token`, {
          refreshToken: current.refreshToken,
        });
      } catch (err) {
        if ((err as { status?: number }).status === 401 || (err as { status?: number }).status === 403) {
          this.clear();
          throw new CredentialsGone(String((err as Error).message));
        }
        throw err;
      }
      const next: CustomerCredentials = {
        customerId: current.customerId,
        token: body.token,
        refreshToken: body.refreshToken,
        expiresAt: body.expiresAt,
        sessionId: body.sessionId,
      };
      this.save(next);
      return next;
    };
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    return locks ? (locks.request(LOCK, run) as unknown as Promise<CustomerCredentials>) : run();
  }

  private async post(path: string, payload: unknown): Promise<any> {
    const res = await fetch(this.apiUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(body?.error ?? `HTTP ${res.status}`) as Error & { status: number };
      err.status = res.status;
      throw err;
    }
    return body;
  }
}
