import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
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
  /** Gatehouse against the baseline, one side after the other (the default). */
  kind?: 'sides';
  name: string;
  title: string;
  /** What was done, for the report (markdown). */
  describe(): string;
  metrics: MetricSpec[];
  /** Gatehouse's messages.replayLimit for this scenario. */
  replayLimit?: number;
  run(ctx: SideContext): Promise<Record<string, number>>;
}

/** One run of a scenario that compares setups of Gatehouse with each other (no baseline side). */
export interface SetupsRun {
  /** setup → metric → value. */
  values: Record<string, Record<string, number>>;
  /** setup → why it was skipped in this run. */
  skipped: Record<string, string>;
}

/** What such a scenario adds to the report. */
export interface SetupsReport {
  /** Rows of the "Targets" table of setups compared with a reference setup. */
  targets: {
    metric: string;
    reference: string;
    measured: string;
    difference: string;
    target: string;
    result: string;
  }[];
  /** Its section (markdown, from its `## …` heading on). */
  section: string;
  /** Summary lines for the console. */
  console: string[];
}

/**
 * A scenario that starts its own processes for each run (several Gatehouse setups, e.g. one
 * node against a cluster of two) and renders its own section of the report.
 */
export interface SetupsScenario {
  kind: 'setups';
  name: string;
  title: string;
  /** One run (`run` of `runs`), with the bench's signing key. */
  run(args: { run: number; runs: number; key: BenchKey }): Promise<SetupsRun>;
  report(runs: SetupsRun[]): SetupsReport;
  /** Not in the default `npm run bench`: the command that runs it (the report says so). */
  optIn?: string;
  /** A document of its own (`file` relative to the repository), written whenever it ran. */
  document?: {
    file: string;
    render(runs: SetupsRun[], meta: { command: string; started: Date; machine: string[] }): string;
  };
}

let profiles = 0;

/**
 * Reads the server's CPU time around `task` (both readings come from inside the server
 * process). With BENCH_PROFILE_DIR set, Gatehouse's side also writes a CPU profile of the
 * phase there (sampled every 50 µs; the profiler's own cost inflates that run's numbers).
 */
export async function measured<T>(ctx: SideContext, task: () => Promise<T>): Promise<{ result: T; cpuUs: number }> {
  const profileDir = ctx.side === 'gatehouse' ? process.env.BENCH_PROFILE_DIR : undefined;
  if (profileDir) await ctx.server.call('profileStart', { intervalUs: 50 });
  const before = await ctx.server.call<ServerStats>('stats');
  const result = await task();
  const after = await ctx.server.call<ServerStats>('stats');
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    await ctx.server.call('profileStop', {
      file: join(profileDir, `gatehouse-${process.pid}-${++profiles}.cpuprofile`),
    });
  }
  return { result, cpuUs: after.cpuUs - before.cpuUs };
}
