import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import type { Store } from '../store/store.js';

/** How long one probe's verdict is reused: a scrape flood costs one store write per second. */
export const READINESS_CACHE_MS = 1000;

export interface ReadinessVerdict {
  store: boolean;
  broker: boolean;
}

/**
 * Readiness as the ability to serve writes: a tiny write to the store (a full disk or a
 * read-only database fails it while reads still work) and a broker ping. Concurrent checks
 * share one probe, and a verdict is reused for READINESS_CACHE_MS. Failures go to the log
 * (once per change of state), never to the HTTP answer.
 */
export class ReadinessProbe {
  private cached: { at: number; verdict: ReadinessVerdict } | null = null;
  private inFlight: Promise<ReadinessVerdict> | null = null;
  private last: ReadinessVerdict = { store: true, broker: true };

  constructor(
    private readonly store: Store,
    private readonly broker: Broker,
    private readonly log: Logger,
    /** False while the store's start-up work (migrations, tables) waits for the store. */
    private readonly storeStarted: () => boolean,
    /**
     * Monotonic milliseconds. Not the injected Clock on purpose: tests freeze that clock, and
     * a frozen cache would hide a store or broker going away from a test polling /readyz.
     */
    private readonly now: () => number = () => performance.now(),
  ) {}

  check(): Promise<ReadinessVerdict> {
    if (this.cached && this.now() - this.cached.at < READINESS_CACHE_MS) return Promise.resolve(this.cached.verdict);
    this.inFlight ??= this.probe().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async probe(): Promise<ReadinessVerdict> {
    const at = this.now();
    const [store, broker] = await Promise.all([
      this.attempt('store', async () => {
        if (!this.storeStarted()) throw new Error('the store could not be reached at start yet');
        await this.store.probeWrite();
      }),
      this.attempt('broker', () => this.broker.ping()),
    ]);
    const verdict = { store, broker };
    this.cached = { at, verdict };
    this.last = verdict;
    return verdict;
  }

  private async attempt(part: 'store' | 'broker', probe: () => Promise<void>): Promise<boolean> {
    try {
      await probe();
      if (!this.last[part]) this.log.info({ part }, 'readiness: %s is available again', part);
      return true;
    } catch (err) {
      if (this.last[part]) this.log.warn({ err, part }, 'readiness: %s is unavailable', part);
      return false;
    }
  }
}
