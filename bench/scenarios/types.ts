import type { BenchKey, Child, ServerStats } from '../common.js';

export type Side = 'gatehouse' | 'baseline';

/** One side of one run: a fresh server process and a fresh load-generator process. */
export interface SideContext {
  side: Side;
  key: BenchKey;
  server: Child;
  load: Child;
  httpUrl: string;
  wsUrl: string;
}

export interface MetricSpec {
  key: string;
  label: string;
  unit: string;
  /** Which direction is better (for the ratio's reading). */
  better: 'lower' | 'higher';
  digits?: number;
  /** A target on Gatehouse ÷ baseline. */
  maxRatio?: number;
  /** A target on Gatehouse's own value. */
  max?: number;
  min?: number;
}

export interface Scenario {
  name: string;
  title: string;
  /** What was done, for the report (markdown). */
  describe(): string;
  metrics: MetricSpec[];
  /** Gatehouse's messages.replayLimit for this scenario. */
  replayLimit?: number;
  run(ctx: SideContext): Promise<Record<string, number>>;
}

/** Reads the server's CPU time around `task` (both readings come from inside the server process). */
export async function measured<T>(ctx: SideContext, task: () => Promise<T>): Promise<{ result: T; cpuUs: number }> {
  const before = await ctx.server.call<ServerStats>('stats');
  const result = await task();
  const after = await ctx.server.call<ServerStats>('stats');
  return { result, cpuUs: after.cpuUs - before.cpuUs };
}
