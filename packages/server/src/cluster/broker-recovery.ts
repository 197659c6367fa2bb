import type { Logger } from 'pino';
import type { RevocationCache } from '../auth/revocation-cache.js';
import type { Broker } from '../broker/broker.js';
import { type ConnectionRegistry, kick } from '../gateway/connection-registry.js';

/** Sockets re-checked against the store at once (a node may hold many thousands). */
const RECHECK_CONCURRENCY = 32;

/**
 * What a node does when its broker connection comes back: control events published
 * meanwhile (logouts, revocations, blocks, conversation changes) are never replayed, so it
 * drops the caches those events keep fresh and re-checks its live sockets against the
 * store, closing those whose login session was revoked (4410 REVOKED; a revoke-all revokes
 * every session too) or whose principal was blocked (4410 BLOCKED).
 */
export class BrokerRecovery {
  private stopListening: (() => void) | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly broker: Pick<Broker, 'onStatus' | 'ping'>,
    private readonly revocations: RevocationCache,
    private readonly caches: { clear(): void }[],
    private readonly registry: ConnectionRegistry,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopListening = this.broker.onStatus((status, previous) => {
      if (status === 'ready' && previous === 'reconnecting') void this.recover();
    });
  }

  stop(): Promise<void> {
    this.stopListening?.();
    return this.running ?? Promise.resolve();
  }

  /** Resolves when the re-check is done (a re-check asked for meanwhile joins the one under way). */
  recover(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<void> {
    // Answered after the client re-subscribed: events from here on are heard, so what is
    // read below cannot miss one.
    await this.broker.ping().catch(() => {});
    this.revocations.clear();
    for (const cache of this.caches) cache.clear();
    const sockets = [...this.registry.all].filter((conn) => conn.auth && !conn.closed);
    let closed = 0;
    for (let i = 0; i < sockets.length; i += RECHECK_CONCURRENCY)
      await Promise.all(
        sockets.slice(i, i + RECHECK_CONCURRENCY).map(async (conn) => {
          const auth = conn.auth;
          if (!auth || conn.closed) return;
          try {
            if ((await this.revocations.principal(auth.principal.id)).blocked) {
              kick(conn, 'BLOCKED');
              closed++;
            } else if (await this.revocations.sessionRevoked(auth.sid)) {
              kick(conn, 'REVOKED');
              closed++;
            }
          } catch (err) {
            this.log.warn({ err }, 'could not re-check a socket after the broker came back');
          }
        }),
      );
    this.log.info({ checked: sockets.length, closed }, 'broker is back: caches dropped, live sockets re-checked');
  }
}
