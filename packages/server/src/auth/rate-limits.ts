import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { GatehouseConfig } from '../config.js';
import { ms } from '../config.js';
import { GatehouseError } from '../errors.js';

/** Thrown when a limit is hit; carries the seconds to put in `Retry-After`. */
export class RateLimitedError extends GatehouseError {
  constructor(readonly retryAfterSeconds: number) {
    super('RATE_LIMITED', `too many attempts; retry in ${retryAfterSeconds} s`);
  }
}

const retryAfter = (res: RateLimiterRes): number => Math.max(1, Math.ceil(res.msBeforeNext / 1000));

export interface LimiterOptions {
  keyPrefix: string;
  points: number;
  duration: number;
}

/** Builds one limiter; the composition root picks memory (one node), Redis or PostgreSQL (a cluster). */
export type LimiterFactory = (options: LimiterOptions) => RateLimiterAbstract;

export const memoryLimiters: LimiterFactory = (options) => new RateLimiterMemory(options);

/**
 * Every rate limit of a node, built on rate-limiter-flexible: in memory on one node, in
 * Redis or PostgreSQL (shared by every node) in a cluster.
 */
export class RateLimits {
  private readonly loginPerAccount: RateLimiterAbstract;
  private readonly loginPerIp: RateLimiterAbstract;
  private readonly customerTokensPerIp: RateLimiterAbstract;
  private readonly handshakesPerIp: RateLimiterAbstract;
  private readonly supportSessions: RateLimiterAbstract;

  constructor(config: GatehouseConfig, create: LimiterFactory = memoryLimiters) {
    const loginWindow = Math.ceil(ms(config, 'limits.loginWindow') / 1000);
    this.loginPerAccount = create({
      keyPrefix: 'login-account',
      points: config.limits.loginAttemptsPerAccount,
      duration: loginWindow,
    });
    this.loginPerIp = create({
      keyPrefix: 'login-ip',
      points: config.limits.loginAttemptsPerIp,
      duration: loginWindow,
    });
    this.customerTokensPerIp = create({
      keyPrefix: 'customer-ip',
      points: config.limits.customerTokensPerMinutePerIp,
      duration: 60,
    });
    this.handshakesPerIp = create({
      keyPrefix: 'handshake-ip',
      points: config.limits.handshakesPerSecondPerIp,
      duration: 1,
    });
    this.supportSessions = create({
      keyPrefix: 'support-session',
      points: config.limits.supportSessionsPerMinute,
      duration: 60,
    });
  }

  /**
   * Counts a login attempt against the account and the IP before the password is checked,
   * so that parallel guesses cannot all pass a check made before any of them failed.
   * Throws RateLimitedError when either has used up its attempts.
   */
  async loginAttempt(account: string, ip: string): Promise<void> {
    const results = await Promise.allSettled([this.loginPerAccount.consume(account), this.loginPerIp.consume(ip)]);
    for (const result of results)
      if (result.status === 'rejected') {
        if (result.reason instanceof RateLimiterRes) throw new RateLimitedError(retryAfter(result.reason));
        throw result.reason;
      }
  }

  /** A successful login clears the account's attempts and gives the IP its attempt back. */
  async loginSucceeded(account: string, ip: string): Promise<void> {
    await Promise.all([this.loginPerAccount.delete(account), this.loginPerIp.reward(ip, 1)]);
  }

  customerToken(ip: string): Promise<void> {
    return this.consume(this.customerTokensPerIp, ip);
  }

  /** A customer asks for a support session: counted against the customer and against the IP. */
  async supportSession(customerId: string, ip: string): Promise<void> {
    await this.consume(this.supportSessions, `customer:${customerId}`);
    await this.consume(this.supportSessions, `ip:${ip}`);
  }

  handshake(ip: string): Promise<void> {
    return this.consume(this.handshakesPerIp, ip);
  }

  private async consume(limiter: RateLimiterAbstract, key: string): Promise<void> {
    try {
      await limiter.consume(key);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw new RateLimitedError(retryAfter(err));
      throw err;
    }
  }
}
