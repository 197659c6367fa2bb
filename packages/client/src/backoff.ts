/** Reconnect delays: exponential with full jitter, capped (see docs/client.md). */
export interface BackoffOptions {
  /** First delay's upper bound, ms (default 1000). */
  initial: number;
  /** Cap of the delay's upper bound, ms (default 10000). */
  max: number;
  /** Upper bound of the jitter for a prompt retry (1001/1012), ms (default 1000). */
  prompt: number;
  /** Lower bound for a long backoff (4429, 1013), ms (default 5000); the delay is random in [bound, 2 × bound). */
  long: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initial: 1000, max: 10_000, prompt: 1000, long: 5000 };

/**
 * The delay before reconnect attempt `attempt` (1, 2, …): uniformly random in
 * [0, min(max, initial · 2^(attempt−1))) — full jitter spreads a crowd of clients evenly.
 */
export function backoffDelay(
  options: BackoffOptions,
  attempt: number,
  kind: 'prompt' | 'backoff' | 'long',
  retryAfterMs = 0,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.max, options.initial * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  if (kind === 'prompt' && attempt <= 1) return Math.floor(random() * options.prompt);
  if (kind === 'long') {
    // At least Retry-After (or `long`), then as much jitter again: a refused crowd comes back spread out.
    const floor = Math.max(retryAfterMs, options.long);
    return Math.floor(floor + random() * Math.max(floor, ceiling));
  }
  return Math.floor(Math.max(retryAfterMs, random() * ceiling));
}
