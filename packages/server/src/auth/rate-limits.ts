import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
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

/**
 * Every rate limit of a node, built on rate-limiter-flexible (memory here; the Redis
 * variant of the same classes makes them cluster-wide).
 */
export class RateLimits {
  private readonly loginPerAccount: RateLimiterMemory;
  private readonly loginPerIp: RateLimiterMemory;
  private readonly customerTokensPerIp: RateLimiterMemory;
  private readonly handshakesPerIp: RateLimiterMemory;

  constructor(config: GatehouseConfig) {
    const loginWindow = Math.ceil(ms(config, 'limits.loginWindow') / 1000);
    this.loginPerAccount = new RateLimiterMemory({
      keyPrefix: 'login-account',
      points: config.limits.loginAttemptsPerAccount,
      duration: loginWindow,
    });
    this.loginPerIp = new RateLimiterMemory({
      keyPrefix: 'login-ip',
      points: config.limits.loginAttemptsPerIp,
      duration: loginWindow,
    });
    this.customerTokensPerIp = new RateLimiterMemory({
      keyPrefix: 'customer-ip',
      points: config.limits.customerTokensPerMinutePerIp,
      duration: 60,
    });
    this.handshakesPerIp = new RateLimiterMemory({
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

  private async consume(limiter: RateLimiterMemory, key: string): Promise<void> {
    try {
      await limiter.consume(key);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw new RateLimitedError(retryAfter(err));
      throw err;
    }
  }
}
