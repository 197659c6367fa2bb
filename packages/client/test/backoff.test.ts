import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BackoffOptions,
  backoffDelay,
  checkBackoff,
  DEFAULT_BACKOFF,
  nextSpreadAttempt,
  type SpreadSchedule,
  startSpread,
} from '../src/backoff.js';

/** Stands for a random source that returned `r`. */
const fixed = (r: number) => () => r;
const JUST_BELOW_ONE = 0.9999;

/**
 * A crowd of `n` clients closed at 0 with evenly spaced phases (the expectation of a uniform
 * random source, without its noise), retrying on their schedule while the node is down until
 * `backAt`: the time each one's first attempt reaches the node that is back.
 */
function crowdArrivals(n: number, window: number, backAt: number): number[] {
  const arrivals: number[] = [];
  for (let i = 0; i < n; i++) {
    const schedule: SpreadSchedule = startSpread(window, 0, fixed((i + 0.5) / n));
    let at = 0;
    for (;;) {
      const next = nextSpreadAttempt(schedule, at);
      schedule.slot = next.slot;
      at += next.delay;
      if (at >= backAt) break;
      // Refused at once (nothing listens): the failure is noticed 1 ms later.
      at += 1;
    }
    arrivals.push(at);
  }
  return arrivals;
}

/** The most arrivals in any window of `width` ms that starts at an arrival. */
function peak(arrivals: number[], width: number): number {
  const sorted = [...arrivals].sort((a, b) => a - b);
  let most = 0;
  for (let lo = 0, hi = 0; lo < sorted.length; lo++) {
    while (hi < sorted.length && (sorted[hi] as number) < (sorted[lo] as number) + width) hi++;
    most = Math.max(most, hi - lo);
  }
  return most;
}

describe('backoffDelay (full jitter)', () => {
  it('draws attempt n in [0, min(max, initial · 2^(n−1)))', () => {
    const options: BackoffOptions = { initial: 100, max: 1000, spread: 5000, long: 300 };
    for (const [attempt, ceiling] of [
      [1, 100],
      [2, 200],
      [4, 800],
      [5, 1000],
      [40, 1000],
    ] as const) {
      assert.equal(backoffDelay(options, attempt, 'backoff', 0, fixed(0)), 0);
      assert.equal(backoffDelay(options, attempt, 'backoff', 0, fixed(0.5)), ceiling / 2);
      assert.equal(backoffDelay(options, attempt, 'backoff', 0, fixed(JUST_BELOW_ONE)), ceiling - 1);
    }
  });

  it('keeps a lone client after a blip quick: the first retry of the defaults is within 1 s', () => {
    assert.ok(backoffDelay(DEFAULT_BACKOFF, 1, 'backoff', 0, fixed(JUST_BELOW_ONE)) < 1000);
  });

  it('waits at least Retry-After, and a long backoff at least its floor plus as much jitter again', () => {
    const options: BackoffOptions = { initial: 100, max: 1000, spread: 5000, long: 300 };
    assert.equal(backoffDelay(options, 1, 'backoff', 700, fixed(0.5)), 700);
    assert.equal(backoffDelay(options, 1, 'long', 0, fixed(0)), 300);
    assert.equal(backoffDelay(options, 1, 'long', 0, fixed(JUST_BELOW_ONE)), 599);
    assert.equal(backoffDelay(options, 1, 'long', 2000, fixed(0.5)), 3000);
  });
});

describe('spread schedule (after 1001/1012)', () => {
  it('draws the phase once, uniformly in [0, window)', () => {
    assert.equal(startSpread(15_000, 50, fixed(0)).phase, 0);
    assert.equal(startSpread(15_000, 50, fixed(0.5)).phase, 7500);
    assert.equal(startSpread(15_000, 50, fixed(JUST_BELOW_ONE)).phase, 14_998);
    assert.deepEqual(startSpread(15_000, 50, fixed(0.25)), { start: 50, phase: 3750, window: 15_000, slot: -1 });
  });

  it('takes phase 0 from a random source that answers outside [0, 1), so that no delay is NaN', () => {
    for (const r of [Number.NaN, 1, 1.5, -0.2]) {
      const schedule = startSpread(1000, 0, fixed(r));
      assert.equal(schedule.phase, 0, String(r));
      assert.deepEqual(nextSpreadAttempt(schedule, 0), { slot: 0, delay: 0 });
    }
  });

  it('tries at start + phase, then one window apart while each attempt fails', () => {
    const schedule = startSpread(1000, 10_000, fixed(0.3));
    const first = nextSpreadAttempt(schedule, 10_000);
    assert.deepEqual(first, { slot: 0, delay: 300 });
    schedule.slot = first.slot;
    // Refused 5 ms after the attempt at 10,300: the next one is at 11,300.
    assert.deepEqual(nextSpreadAttempt(schedule, 10_305), { slot: 1, delay: 995 });
  });

  it('waits exactly the phase when asked at the moment of the close, whatever the clock reads', () => {
    // performance.now() after ~17 minutes: (start + 100) − start is 100.00000000009 in floating point.
    const start = 1_048_479.823131041;
    const schedule = startSpread(400, start, fixed(0.25));
    assert.deepEqual(nextSpreadAttempt(schedule, start), { slot: 0, delay: 100 });
  });

  it('never retries at once when an attempt fails within the same millisecond as its slot', () => {
    const schedule = startSpread(1000, 0, fixed(0.3));
    schedule.slot = nextSpreadAttempt(schedule, 0).slot;
    assert.deepEqual(nextSpreadAttempt(schedule, 300), { slot: 1, delay: 1000 });
  });

  it('skips to the next slot that is still ahead after a slow attempt (a connect that hung)', () => {
    const schedule = startSpread(1000, 0, fixed(0.3));
    schedule.slot = 0;
    assert.deepEqual(nextSpreadAttempt(schedule, 3450), { slot: 4, delay: 850 });
  });

  it('honours a refusal floor (Retry-After or the long backoff) and keeps to its slots', () => {
    const schedule = startSpread(1000, 0, fixed(0.3));
    schedule.slot = 0;
    // Refused at 301 with Retry-After 2 s: not before 2,301, so the slot at 2,300 is too early.
    assert.deepEqual(nextSpreadAttempt(schedule, 301, 2000), { slot: 3, delay: 2999 });
    assert.deepEqual(nextSpreadAttempt(schedule, 301, 1999), { slot: 2, delay: 1999 });
  });

  it('brings a crowd back evenly within one window, however long the node was down', () => {
    const n = 5000;
    const window = 15_000;
    const even = n / (window / 1000); // arrivals per second
    for (const backAt of [0, 800, 2500, 6200, 14_999, 15_000, 23_456, 61_000]) {
      const arrivals = crowdArrivals(n, window, backAt);
      assert.ok(
        arrivals.every((t) => t >= backAt && t < backAt + window),
        `back at ${backAt}: all within one window`,
      );
      const most = peak(arrivals, 1000);
      assert.ok(most <= Math.ceil(even) + 1, `back at ${backAt}: at most ${even}/s (+1), got ${most}`);
    }
  });
});

describe('checkBackoff', () => {
  it('refuses delays that are not finite numbers ≥ 0, and a spread under 1 ms', () => {
    assert.doesNotThrow(() => checkBackoff(DEFAULT_BACKOFF));
    for (const bad of [{ spread: 0 }, { max: -1 }, { initial: Number.NaN }, { long: Infinity }, { spread: '1000' }])
      assert.throws(() => checkBackoff({ ...DEFAULT_BACKOFF, ...(bad as object) }), TypeError, JSON.stringify(bad));
  });
});
