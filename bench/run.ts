/**
 * `npm run bench [-- --scenario NAME[,NAME…]] [--runs N] [--out FILE]`
 *
 * Measures Gatehouse and a bare `ws` + `jose` baseline side by side, in one run: for each
 * run and scenario, each side gets a fresh server process and a fresh load-generator
 * process (one side after the other, never both at once). CPU and memory are read inside
 * the server process over IPC. Scenarios of kind `setups` (cross-node) compare setups of
 * Gatehouse with each other instead, starting their own processes. Writes
 * docs/benchmarks.md for a full run (every default scenario), bench/results/latest.md otherwise.
 * Opt-in scenarios (`scale`) run only when named; the report lists them with their command.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchKey, Child } from './common.js';
import { machineRows, type NotRun, renderReport, type ScenarioResults, type SetupsResults } from './report.js';
import { crossNode } from './scenarios/cross-node.js';
import { direct } from './scenarios/direct.js';
import { fanout } from './scenarios/fanout.js';
import { handshake } from './scenarios/handshake.js';
import { reconnectStorm } from './scenarios/reconnect-storm.js';
import { replay } from './scenarios/replay.js';
import { scaleScenario } from './scenarios/scale.js';
import type { Scenario, SetupsScenario, Side, SideContext } from './scenarios/types.js';

const SCENARIOS: (Scenario | SetupsScenario)[] = [
  handshake,
  direct,
  fanout,
  replay,
  crossNode,
  reconnectStorm,
  scaleScenario,
];
/** What `npm run bench` runs without `--scenario`: every scenario but the opt-in ones. */
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => !(s.kind === 'setups' && s.optIn));
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function parseArgs(argv: string[]): { scenarios: (Scenario | SetupsScenario)[]; runs: number; out: string | null } {
  let names: string[] = [];
  let runs = 3;
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--scenario' || arg === '-s') names.push(...value().split(','));
    else if (arg.startsWith('--scenario=')) names.push(...arg.slice(11).split(','));
    else if (arg === '--runs') runs = Number(value());
    else if (arg.startsWith('--runs=')) runs = Number(arg.slice(7));
    else if (arg === '--out') out = value();
    else if (arg.startsWith('--out=')) out = arg.slice(6);
    else if (arg === '--help' || arg === '-h') {
      console.log(
        `usage: npm run bench -- [--scenario ${SCENARIOS.map((s) => s.name).join(',')}] [--runs 3] [--out FILE]`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  names = names.map((n) => n.trim()).filter(Boolean);
  const scenarios = names.length === 0 ? DEFAULT_SCENARIOS : SCENARIOS.filter((s) => names.includes(s.name));
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0)
    throw new Error(`unknown scenario ${unknown.join(', ')} (have ${SCENARIOS.map((s) => s.name)})`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  return { scenarios, runs, out };
}

async function runSide(scenario: Scenario, side: Side, key: BenchKey): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  // e.g. BENCH_GATEHOUSE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile Gatehouse's side.
  const extra = side === 'gatehouse' ? (process.env.BENCH_GATEHOUSE_NODE_ARGS ?? '').split(' ').filter(Boolean) : [];
  const execArgv = ['--expose-gc', ...extra];
  const server =
    side === 'gatehouse'
      ? new Child<{ port: number }>(
          'gatehouse-server',
          new URL('./gatehouse-server.js', import.meta.url),
          [JSON.stringify({ dataDir, key, replayLimit: scenario.replayLimit ?? 500 })],
          execArgv,
        )
      : new Child<{ port: number }>(
          'baseline-server',
          new URL('./baseline-server.js', import.meta.url),
          [JSON.stringify({ key })],
          execArgv,
        );
  const load = new Child('load', new URL('./load.js', import.meta.url));
  try {
    const [{ port }] = await Promise.all([server.ready, load.ready]);
    const ctx: SideContext = {
      side,
      key,
      server,
      load,
      httpUrl: `http://127.0.0.1:${port}`,
      wsUrl: `ws://127.0.0.1:${port}`,
    };
    return await scenario.run(ctx);
  } finally {
    await load.stop();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** An opt-in scenario's document relative to the report's folder, when one has been written. */
function documentOf(scenario: SetupsScenario, from: string): string | undefined {
  if (!scenario.document) return undefined;
  const file = join(root, scenario.document.file);
  return existsSync(file) ? relative(from, file) : undefined;
}

async function main(): Promise<void> {
  const { scenarios, runs, out } = parseArgs(process.argv.slice(2));
  const started = new Date();
  // The whole run is bounded: a wedged child cannot keep it alive.
  // An opt-in scenario (scale: tens of thousands of handshakes on a shared machine) gets 30 more.
  const minutes = scenarios.some((s) => s.kind === 'setups' && s.optIn) ? 60 : 30;
  const watchdog = setTimeout(() => {
    console.error(`bench: giving up after ${minutes} minutes`);
    process.exit(2);
  }, minutes * 60_000);
  watchdog.unref();
  const results: ScenarioResults[] = scenarios.flatMap((scenario) =>
    scenario.kind === 'setups' ? [] : [{ scenario, runs: [] }],
  );
  const setupResults: SetupsResults[] = scenarios.flatMap((scenario) =>
    scenario.kind === 'setups' ? [{ scenario, runs: [] }] : [],
  );
  for (let run = 1; run <= runs; run++) {
    for (const entry of results) {
      const { scenario } = entry;
      // Alternate which side goes first, so a drift in the machine's load does not always favour one.
      const order: Side[] = run % 2 === 1 ? ['gatehouse', 'baseline'] : ['baseline', 'gatehouse'];
      const key: BenchKey = {
        kid: `bench-${randomBytes(3).toString('hex')}`,
        secret: randomBytes(32).toString('base64url'),
      };
      const sides: Partial<Record<Side, Record<string, number>>> = {};
      for (const side of order) {
        const t0 = Date.now();
        sides[side] = await runSide(scenario, side, key);
        console.log(
          `run ${run}/${runs} ${scenario.name.padEnd(9)} ${side.padEnd(9)} ${((Date.now() - t0) / 1000).toFixed(1)}s ` +
            Object.entries(sides[side] as Record<string, number>)
              .map(([k, v]) => `${k}=${Number(v.toPrecision(4))}`)
              .join(' '),
        );
      }
      entry.runs.push(sides as Record<Side, Record<string, number>>);
    }
    for (const entry of setupResults) {
      const key: BenchKey = {
        kid: `bench-${randomBytes(3).toString('hex')}`,
        secret: randomBytes(32).toString('base64url'),
      };
      entry.runs.push(await entry.scenario.run({ run, runs, key }));
    }
  }
  const all = DEFAULT_SCENARIOS.every((s) => scenarios.includes(s));
  const target = out ?? (all ? join(root, 'docs/benchmarks.md') : join(root, 'bench/results/latest.md'));
  const argv = process.argv.slice(2);
  const command = argv.length > 0 ? `npm run bench -- ${argv.join(' ')}` : 'npm run bench';
  // The hand-written findings (profiles before and after, what did not help) close the report.
  const findings = readFileSync(join(root, 'bench/findings.md'), 'utf8');
  const notRun: NotRun[] = SCENARIOS.flatMap((s) =>
    s.kind === 'setups' && s.optIn && !scenarios.includes(s)
      ? [{ name: s.name, title: s.title, command: s.optIn, document: documentOf(s, dirname(target)) }]
      : [],
  );
  const report = renderReport(results, setupResults, {
    runs,
    started,
    finished: new Date(),
    command,
    notRun,
    findings,
  });
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, report.markdown);
  console.log(`\n${report.summary}\nwrote ${relative(process.cwd(), target)}`);
  // Scenarios with a document of their own (the opt-in scale scenario: docs/scale.md).
  for (const entry of setupResults) {
    if (!entry.scenario.document || entry.runs.every((r) => Object.keys(r.values).length === 0)) continue;
    const { file: name, render } = entry.scenario.document;
    const file = join(root, name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, render(entry.runs, { command, started, machine: machineRows() }));
    console.log(`wrote ${relative(process.cwd(), file)}`);
  }
  clearTimeout(watchdog);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
