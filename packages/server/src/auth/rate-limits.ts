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
  }

  /** Throws RateLimitedError when the account or the IP has used up its failed logins. */
  async checkLogin(account: string, ip: string): Promise<void> {
    const [byAccount, byIp] = await Promise.all([this.loginPerAccount.get(account), this.loginPerIp.get(ip)]);
    for (const [res, limit] of [
      [byAccount, this.loginPerAccount.points],
      [byIp, this.loginPerIp.points],
    ] as const)
      if (res && res.consumedPoints >= limit) throw new RateLimitedError(retryAfter(res));
  }

  /** Counts a failed login against the account and the IP. */
  async loginFailed(account: string, ip: string): Promise<void> {
    await Promise.all([this.loginPerAccount.penalty(account, 1), this.loginPerIp.penalty(ip, 1)]);
  }

  async loginSucceeded(account: string): Promise<void> {
    await this.loginPerAccount.delete(account);
  }

  customerToken(ip: string): Promise<void> {
    return this.consume(this.customerTokensPerIp, ip);
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
