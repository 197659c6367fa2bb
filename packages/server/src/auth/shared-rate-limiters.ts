import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis } from 'rate-limiter-flexible';
import { type LimiterFactory, memoryLimiters } from './rate-limits.js';

/** Where rate-limit counters live; the composition root (app.ts) picks it. */
export type LimiterBackend =
  | { kind: 'memory' }
  /** A Redis server of its own connection; keys are `<prefix>:rl:<limiter>:<key>`. */
  | { kind: 'redis'; url: string; prefix: string }
  /** Tables `gh_rate_limits_<limiter>` through a pool this does not own (the store's). */
  | { kind: 'postgres'; pool: pg.Pool };

export interface SharedLimiters {
  create: LimiterFactory;
  /**
   * Makes every limiter created so far able to count in its backend (PostgreSQL: creates
   * their tables); rejects when the backend cannot be reached, and may be called again.
   */
  ready(): Promise<void>;
  /** Closes what this opened (a borrowed pool stays open). */
  close(): Promise<void>;
}

/**
 * Rate limiters whose counters every node shares. Shared limiters fall back to an in-memory
 * one (rate-limiter-flexible's insurance limiter) while their backend is unreachable, so an
 * outage degrades limits to per-node instead of failing logins.
 */
export function sharedLimiters(backend: LimiterBackend, log: Logger): SharedLimiters {
  if (backend.kind === 'redis') {
    const client = new Redis(backend.url, {
      enableOfflineQueue: false,
      lazyConnect: false,
      connectionName: `${backend.prefix}-rate-limits`,
    });
    client.on('error', (err) => log.debug({ err }, 'rate limits: Redis error'));
    return {
      create: (options) =>
        new RateLimiterRedis({
          ...options,
          keyPrefix: `${backend.prefix}:rl:${options.keyPrefix}`,
          storeClient: client,
          insuranceLimiter: new RateLimiterMemory(options),
        }),
      ready: async () => {},
      close: async () => {
        client.disconnect();
      },
    };
  }
  if (backend.kind === 'postgres') {
    // The limiters are made without touching the database (a node may start while PostgreSQL
    // is down); `ready()` creates their tables, and until it has, they count in memory only.
    const made: ConstructorParameters<typeof RateLimiterPostgres>[0][] = [];
    let creating: Promise<void> | null = null;
    /** The library's own CREATE TABLE, run by an instance made for it alone (no cleanup timer). */
    const createTable = (options: (typeof made)[number]) =>
      new Promise<void>((resolve, reject) => {
        new RateLimiterPostgres({ ...options, tableCreated: false, clearExpiredByTimeout: false }, (err?: unknown) =>
          err ? reject(err) : resolve(),
        );
      });
    /**
     * Nodes starting together on a new database would race on CREATE TABLE IF NOT EXISTS (the
     * loser fails on the table's or its type's name): one node at a time, under a session lock
     * that PostgreSQL releases by itself should the holder's connection die.
     */
    const createTables = async () => {
      const lock = await backend.pool.connect();
      try {
        await lock.query("SELECT pg_advisory_lock(hashtext('gatehouse-rate-limit-tables'))");
        try {
          await Promise.all(made.map(createTable));
        } finally {
          await lock.query("SELECT pg_advisory_unlock(hashtext('gatehouse-rate-limit-tables'))");
        }
      } finally {
        lock.release();
      }
    };
    return {
      create: (options) => {
        const postgresOptions = {
          ...options,
          storeClient: backend.pool,
          storeType: 'pool',
          tableName: `gh_rate_limits_${options.keyPrefix.replace(/[^a-z0-9_]/gi, '_')}`,
          tableCreated: true,
          clearExpiredByTimeout: true,
          insuranceLimiter: new RateLimiterMemory(options),
        };
        made.push(postgresOptions);
        return new RateLimiterPostgres(postgresOptions);
      },
      ready: async () => {
        creating = createTables();
        try {
          await creating;
        } finally {
          creating = null;
        }
      },
      // Waits for table creations under way: they use the borrowed pool, which closes after this.
      close: async () => {
        await creating?.catch(() => {});
      },
    };
  }
  return { create: memoryLimiters, ready: async () => {}, close: async () => {} };
}
