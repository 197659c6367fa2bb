import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { GatehouseConfig } from '../config.js';
import { GatehouseError } from '../errors.js';

/** Thrown when a limit is hit; carries the seconds to put in `Retry-After`. */
export class RateLimitedError extends GatehouseError {
  constructor(readonly retryAfterSeconds: number) {
    super('RATE_LIMITED', `too many attempts; retry in ${retryAfterSeconds} s`);
  }
}

const retryAfter = (res: RateLimiterRes): number => Math.max(1, Math.ceil(res.msBeforeNext / 1000));

/** The account + IP key: an IP never contains `|`, so the pair is unambiguous. */
const accountAtIp = (account: string, ip: string): string => `${ip}|${account}`;

/** Consumes a point from each (limiter, key) at once; the longest wait wins when any refuses. */
async function consumeAll(pairs: [RateLimiterAbstract, string][]): Promise<void> {
  const results = await Promise.allSettled(pairs.map(([limiter, key]) => limiter.consume(key)));
  let wait: RateLimiterRes | null = null;
  for (const result of results)
    if (result.status === 'rejected') {
      if (!(result.reason instanceof RateLimiterRes)) throw result.reason;
      if (!wait || result.reason.msBeforeNext > wait.msBeforeNext) wait = result.reason;
    }
  if (wait) throw new RateLimitedError(retryAfter(wait));
}

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
  private readonly loginPerAccountAndIp: RateLimiterAbstract;
  private readonly loginPerAccount: RateLimiterAbstract;
  private readonly loginPerIp: RateLimiterAbstract;
  private readonly customerTokensPerIp: RateLimiterAbstract;
  private readonly handshakesPerIp: RateLimiterAbstract;
  private readonly supportSessions: RateLimiterAbstract;

  /** `limits`: the `limits.*` slice of the configuration, with `loginWindow` in milliseconds. */
  constructor(
    limits: Omit<GatehouseConfig['limits'], 'loginWindow'> & { loginWindowMs: number },
    create: LimiterFactory = memoryLimiters,
  ) {
    const loginWindow = Math.ceil(limits.loginWindowMs / 1000);
    this.loginPerAccountAndIp = create({
      keyPrefix: 'login-account-ip',
      points: limits.loginAttemptsPerAccountAndIp,
      duration: loginWindow,
    });
    this.loginPerAccount = create({
      keyPrefix: 'login-account',
      points: limits.loginAttemptsPerAccount,
      duration: loginWindow,
    });
    this.loginPerIp = create({
      keyPrefix: 'login-ip',
      points: limits.loginAttemptsPerIp,
      duration: loginWindow,
    });
    this.customerTokensPerIp = create({
      keyPrefix: 'customer-ip',
      points: limits.customerTokensPerMinutePerIp,
      duration: 60,
    });
    this.handshakesPerIp = create({
      keyPrefix: 'handshake-ip',
      points: limits.handshakesPerSecondPerIp,
      duration: 1,
    });
    this.supportSessions = create({
      keyPrefix: 'support-session',
      points: limits.supportSessionsPerMinute,
      duration: 60,
    });
  }

  /**
   * Counts a login attempt before the password is checked, so that parallel guesses cannot all
   * pass a check made before any of them failed. Three limits: the strict one on account + IP
   * (one attacker's address runs out, the account's owner elsewhere does not), the IP's across
   * accounts, and a higher one on the account from every address (bounds a distributed attack).
   * The account-wide count is only spent by attempts the first two let through, so an attacker
   * who keeps hammering from a refused address cannot use it up. Throws RateLimitedError.
   */
  async loginAttempt(account: string, ip: string): Promise<void> {
    await consumeAll([
      [this.loginPerAccountAndIp, accountAtIp(account, ip)],
      [this.loginPerIp, ip],
    ]);
    await consumeAll([[this.loginPerAccount, account]]);
  }

  /** A successful login clears the account's failures (at this IP and overall) and gives the IP its attempt back. */
  async loginSucceeded(account: string, ip: string): Promise<void> {
    await Promise.all([
      this.loginPerAccountAndIp.delete(accountAtIp(account, ip)),
      this.loginPerAccount.delete(account),
      this.loginPerIp.reward(ip, 1),
    ]);
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
