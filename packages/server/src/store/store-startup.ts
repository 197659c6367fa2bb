import type { Logger } from 'pino';
import { isConnectionFailure } from './connection-failures.js';

/** Waits between attempts while the store is unreachable: doubling from the first to the last. */
export interface StartupRetryDelays {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_STARTUP_RETRY: StartupRetryDelays = { initialMs: 250, maxMs: 5000 };

/**
 * The start-up work that needs the store: migrations, the cluster-state and rate-limit tables.
 * A store that cannot be reached at start (PostgreSQL down, or not up yet beside the node)
 * does not stop the start: the node listens, not ready, and the work is retried until it
 * succeeds. Until then `ready` is false, and the REST routes, the gateway and `/readyz` refuse
 * with 503. Any other failure (a wrong password, a missing database, a failing migration)
 * still fails the start: that is a configuration to fix, not a wait.
 *
 * The waits are real timers, not the injected Clock: tests freeze that clock, and a node must
 * still come up when its database does.
 */
export class StoreStartup {
  private done = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private attempt: Promise<void> | null = null;

  constructor(
    private readonly work: () => Promise<void>,
    private readonly log: Logger,
    private readonly delays: StartupRetryDelays = DEFAULT_STARTUP_RETRY,
  ) {}

  /** Whether the store's start-up work has been done (always, once it has). */
  get ready(): boolean {
    return this.done;
  }

  /**
   * The first attempt. Resolves when the work is done, or when it failed because the store
   * is unreachable (the retries go on in the background); rejects on any other failure.
   */
  async start(): Promise<void> {
    try {
      await this.run();
    } catch (err) {
      if (!isConnectionFailure(err)) throw err;
      this.log.warn(
        { err },
        'the store is unreachable at start: serving, not ready, until it answers (retrying in the background)',
      );
      this.retryIn(this.delays.initialMs);
    }
  }

  /** Stops retrying; waits for an attempt under way (it uses connections about to close). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.attempt?.catch(() => {});
  }

  private async run(): Promise<void> {
    this.attempt = this.work();
    try {
      await this.attempt;
    } finally {
      this.attempt = null;
    }
    this.done = true;
  }

  private retryIn(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.run().then(
        () => this.log.info('the store answers: start-up finished, the node is ready to serve'),
        (err) => {
          if (this.stopped) return;
          // Still unreachable is expected; anything else (say a migration that fails) is logged
          // louder, and retried all the same: the operator may fix it without a restart.
          if (isConnectionFailure(err)) this.log.debug({ err }, 'the store is still unreachable');
          else this.log.error({ err }, 'store start-up failed; retrying');
          this.retryIn(Math.min(delayMs * 2, this.delays.maxMs));
        },
      );
    }, delayMs);
  }
}
