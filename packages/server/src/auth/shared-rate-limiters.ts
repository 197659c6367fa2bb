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
  /** Resolves once every limiter created so far can count in its backend. */
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
    // Until its table exists a limiter counts in memory only, so the node waits for the tables.
    const tables: Promise<void>[] = [];
    return {
      create: (options) => {
        let created!: () => void;
        tables.push(
          new Promise((resolve) => {
            created = resolve;
          }),
        );
        return new RateLimiterPostgres(
          {
            ...options,
            storeClient: backend.pool,
            storeType: 'pool',
            tableName: `gh_rate_limits_${options.keyPrefix.replace(/[^a-z0-9_]/gi, '_')}`,
            clearExpiredByTimeout: true,
            insuranceLimiter: new RateLimiterMemory(options),
          },
          (err?: unknown) => {
            if (err) log.warn({ err }, 'rate limits: could not create the PostgreSQL table; limiting in memory');
            created();
          },
        );
      },
      ready: async () => {
        await Promise.all(tables);
      },
      // Waits for the table creations: they use the borrowed pool, which closes after this.
      close: async () => {
        await Promise.all(tables);
      },
    };
  }
  return { create: memoryLimiters, ready: async () => {}, close: async () => {} };
}
