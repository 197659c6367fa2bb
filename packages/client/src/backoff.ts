/** Reconnect delays: exponential with full jitter, capped; a spread schedule for crowds (see docs/client.md). */
export interface BackoffOptions {
  /** First delay's upper bound, ms (default 1000). */
  initial: number;
  /** Cap of the delay's upper bound, ms (default 10000). */
  max: number;
  /**
   * Window the retries after a server-wide close (1001/1012) are spread over, ms (default 15000):
   * a node that had N clients sees them come back at about N ÷ spread per second.
   */
  spread: number;
  /** Lower bound for a long backoff (4429, 1013), ms (default 5000); the delay is random in [bound, 2 × bound). */
  long: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initial: 1000, max: 10_000, spread: 15_000, long: 5000 };

/** Throws a TypeError naming the first option that is not a usable delay. */
export function checkBackoff(options: BackoffOptions): void {
  for (const [name, value] of Object.entries(options))
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      throw new TypeError(`backoff.${name} must be a finite number of ms ≥ 0 (got ${String(value)})`);
  if (options.spread < 1) throw new TypeError('backoff.spread must be at least 1 ms: it is also the retry period');
}

/**
 * The delay before reconnect attempt `attempt` (1, 2, …): uniformly random in
 * [0, min(max, initial · 2^(attempt−1))) — full jitter spreads a crowd of clients evenly.
 */
export function backoffDelay(
  options: BackoffOptions,
  attempt: number,
  kind: 'backoff' | 'long',
  retryAfterMs = 0,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.max, options.initial * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  if (kind === 'long') {
    // At least Retry-After (or `long`), then as much jitter again: a refused crowd comes back spread out.
    const floor = Math.max(retryAfterMs, options.long);
    return Math.floor(floor + random() * Math.max(floor, ceiling));
  }
  return Math.floor(Math.max(retryAfterMs, random() * ceiling));
}

/**
 * One client's place in a crowd that a server closed at once (1001/1012): its attempts fall at
 * `start + phase + k · window` (k = 0, 1, …) with `phase` drawn once, uniformly in [0, window).
 * Drawing anew after every failure (full jitter each time) would not be even: clients that failed
 * late retry soon, and while the node is down the retries bunch up to about 2 × N ÷ window per
 * second; a fixed phase keeps the arrivals at N ÷ window whenever the node comes back, and none
 * waits longer than one window after that.
 */
export interface SpreadSchedule {
  /** When the close came, ms on the client's monotonic clock. */
  start: number;
  phase: number;
  window: number;
  /** Index k of the last attempt scheduled; −1 before the first. */
  slot: number;
}

/** Draws the phase; a random source that answers outside [0, 1) (NaN, 1, −1) gets phase 0, never a retry loop. */
export function startSpread(window: number, now: number, random: () => number = Math.random): SpreadSchedule {
  const r = random();
  return { start: now, phase: r >= 0 && r < 1 ? Math.floor(r * window) : 0, window, slot: -1 };
}

/**
 * The next attempt of a spread schedule: the first slot after the last one scheduled that is at
 * least `floor` ms from `now` (a 4429/1013 refusal's Retry-After or long backoff), and its delay.
 */
export function nextSpreadAttempt(schedule: SpreadSchedule, now: number, floor = 0): { slot: number; delay: number } {
  // Worked in time since the close, not absolute clock readings: `(start + phase) − now` in
  // floating point can come out at phase + 1e−11 and ceil to one ms more than the slot.
  const elapsed = now - schedule.start;
  const slot = Math.max(schedule.slot + 1, Math.ceil((elapsed + floor - schedule.phase) / schedule.window));
  return { slot, delay: Math.max(0, Math.ceil(schedule.phase + slot * schedule.window - elapsed)) };
}
