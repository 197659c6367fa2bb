import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis } from 'rate-limiter-flexible';
import type { GatehouseConfig } from '../config.js';
import { type LimiterFactory, memoryLimiters } from './rate-limits.js';

/**
 * Picks where rate-limit counters live: Redis when the broker is Redis, else PostgreSQL when
 * the store is, else this process's memory. Shared limiters fall back to an in-memory one
 * (rate-limiter-flexible's insurance limiter) while their backend is unreachable, so an outage
 * degrades limits to per-node instead of failing logins.
 */
export function sharedLimiters(
  config: GatehouseConfig,
  log: Logger,
): { create: LimiterFactory; ready(): Promise<void>; close(): Promise<void> } {
  const prefix = `${config.broker.prefix}:rl`;
  if (config.broker.url.startsWith('redis://') || config.broker.url.startsWith('rediss://')) {
    const client = new Redis(config.broker.url, { enableOfflineQueue: false, lazyConnect: false });
    client.on('error', (err) => log.debug({ err }, 'rate limits: Redis error'));
    return {
      create: (options) =>
        new RateLimiterRedis({
          ...options,
          keyPrefix: `${prefix}:${options.keyPrefix}`,
          storeClient: client,
          insuranceLimiter: new RateLimiterMemory(options),
        }),
      ready: async () => {},
      close: async () => {
        client.disconnect();
      },
    };
  }
  if (/^postgres(ql)?:\/\//.test(config.store.url)) {
    const pool = new pg.Pool({ connectionString: config.store.url, max: 4 });
    pool.on('error', (err) => log.debug({ err }, 'rate limits: PostgreSQL error'));
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
            storeClient: pool,
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
      close: () => pool.end(),
    };
  }
  return { create: memoryLimiters, ready: async () => {}, close: async () => {} };
}
