import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, release, totalmem, type } from 'node:os';
import { BENCH_LIMITS, median } from './common.js';
import type { MetricSpec, Scenario, SetupsRun, SetupsScenario, Side } from './scenarios/types.js';

export interface ScenarioResults {
  scenario: Scenario;
  runs: Record<Side, Record<string, number>>[];
}

export interface SetupsResults {
  scenario: SetupsScenario;
  runs: SetupsRun[];
}

const fmt = (value: number, digits = 1): string =>
  Number.isFinite(value)
    ? value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : 'n/a';

function nproc(): string {
  try {
    return execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    return String(availableParallelism());
  }
}

function targetText(spec: MetricSpec): string {
  if (spec.maxRatio !== undefined) return `≤ ${spec.maxRatio.toFixed(2)}× baseline`;
  if (spec.max !== undefined) return `≤ ${spec.max} ${spec.unit}`;
  if (spec.min !== undefined) return `≥ ${spec.min.toLocaleString('en')}${spec.unit === '/s' ? '' : ' '}${spec.unit}`;
  return '';
}

function verdict(spec: MetricSpec, gatehouse: number, ratio: number): string {
  if (spec.maxRatio !== undefined) return ratio <= spec.maxRatio ? 'met' : '**missed**';
  if (spec.max !== undefined) return gatehouse <= spec.max ? 'met' : '**missed**';
  if (spec.min !== undefined) return gatehouse >= spec.min ? 'met' : '**missed**';
  return '';
}

interface Row {
  spec: MetricSpec;
  gatehouse: number;
  baseline: number;
  ratio: number;
}

function rows(entry: ScenarioResults): Row[] {
  return entry.scenario.metrics.map((spec) => {
    const gatehouse = median(entry.runs.map((r) => r.gatehouse[spec.key] ?? Number.NaN));
    const baseline = median(entry.runs.map((r) => r.baseline[spec.key] ?? Number.NaN));
    return { spec, gatehouse, baseline, ratio: gatehouse / baseline };
  });
}

const value = (spec: MetricSpec, v: number) => `${fmt(v, spec.digits)} ${spec.unit}`.replace(' /s', '/s');

/** The rows of the "Machine" table. */
export function machineRows(): string[] {
  return [
    `| nproc | ${nproc()} |`,
    `| CPU | ${cpus()[0]?.model ?? 'unknown'} |`,
    `| memory | ${(totalmem() / 2 ** 30).toFixed(1)} GiB |`,
    `| OS | ${type()} ${release()} |`,
    `| Node.js | ${process.version} |`,
  ];
}

/** An opt-in scenario this run left out: its command, and its own document (path relative to the report). */
export interface NotRun {
  name: string;
  title: string;
  command: string;
  document?: string;
}

export function renderReport(
  results: ScenarioResults[],
  setupResults: SetupsResults[],
  meta: { runs: number; started: Date; finished: Date; command: string; notRun?: NotRun[]; findings?: string },
): { markdown: string; summary: string } {
  const machine = machineRows();
  const summary: string[] = [
    '| scenario | metric | Gatehouse | baseline | Gatehouse ÷ baseline | target | result |',
    '|---|---|---:|---:|---:|---|---|',
  ];
  const console: string[] = [];
  const sections: string[] = [];
  for (const entry of results) {
    const table = rows(entry);
    for (const row of table) {
      const target = targetText(row.spec);
      console.push(
        `${entry.scenario.name.padEnd(9)} ${row.spec.key.padEnd(16)} gatehouse ${fmt(row.gatehouse, row.spec.digits).padStart(10)}  ` +
          `baseline ${fmt(row.baseline, row.spec.digits).padStart(10)}  ratio ${fmt(row.ratio, 2).padStart(6)}` +
          (target ? `  target ${target}: ${verdict(row.spec, row.gatehouse, row.ratio).replaceAll('*', '')}` : ''),
      );
      if (!target) continue;
      summary.push(
        `| ${entry.scenario.name} | ${row.spec.label} | ${value(row.spec, row.gatehouse)} | ${value(row.spec, row.baseline)} | ` +
          `${fmt(row.ratio, 2)}× | ${target} | ${verdict(row.spec, row.gatehouse, row.ratio)} |`,
      );
    }
    const perRun = [
      `| run | side | ${entry.scenario.metrics.map((m) => `${m.key} (${m.unit})`).join(' | ')} |`,
      `|---|---|${entry.scenario.metrics.map(() => '---:').join('|')}|`,
    ];
    entry.runs.forEach((run, i) => {
      for (const side of ['gatehouse', 'baseline'] as const)
        perRun.push(
          `| ${i + 1} | ${side} | ${entry.scenario.metrics.map((m) => fmt(run[side][m.key] ?? Number.NaN, m.digits)).join(' | ')} |`,
        );
    });
    sections.push(
      [
        `## \`${entry.scenario.name}\` — ${entry.scenario.title}`,
        '',
        entry.scenario.describe(),
        '',
        `Medians of ${entry.runs.length} run${entry.runs.length === 1 ? '' : 's'}:`,
        '',
        '| metric | Gatehouse | baseline | Gatehouse ÷ baseline | target |',
        '|---|---:|---:|---:|---|',
        ...table.map(
          (row) =>
            `| ${row.spec.label} | ${value(row.spec, row.gatehouse)} | ${value(row.spec, row.baseline)} | ${fmt(row.ratio, 2)}× | ` +
            `${targetText(row.spec) ? `${targetText(row.spec)}: ${verdict(row.spec, row.gatehouse, row.ratio)}` : ''} |`,
        ),
        '',
        '<details><summary>Every run</summary>',
        '',
        ...perRun,
        '',
        '</details>',
      ].join('\n'),
    );
  }
  const setupTargets: string[] = [];
  for (const entry of setupResults) {
    const report = entry.scenario.report(entry.runs);
    if (setupTargets.length === 0)
      setupTargets.push(
        '| scenario | metric | one node | cross-node | cross-node − one node | target | result |',
        '|---|---|---:|---:|---:|---|---|',
      );
    for (const row of report.targets)
      setupTargets.push(
        `| ${entry.scenario.name} | ${row.metric} | ${row.reference} | ${row.measured} | ${row.difference} | ${row.target} | ${row.result} |`,
      );
    sections.push(report.section);
    console.push(...report.console);
  }
  const minutes = ((meta.finished.getTime() - meta.started.getTime()) / 60_000).toFixed(1);
  const markdown = [
    '# Benchmarks',
    '',
    '<!-- Generated by bench/run.ts; do not edit by hand: re-run the command below. -->',
    '',
    `Measured on ${meta.started.toISOString().slice(0, 10)} (${meta.started.toISOString()}, ${minutes} min) with:`,
    '',
    '```sh',
    'npm ci',
    meta.command,
    '```',
    '',
    `Every number is the **median of ${meta.runs} run${meta.runs === 1 ? '' : 's'}**; each run measures Gatehouse and the ` +
      'bare baseline one after the other on the same machine, so read the ratios more than the absolute numbers ' +
      '(the machine is shared and noisy). `cross-node` compares Gatehouse with itself instead: one node against two ' +
      'nodes over Redis and over NATS, in the same run. `npm run bench -- --scenario handshake --runs 1` runs one ' +
      'scenario quickly.',
    '',
    '## Machine',
    '',
    '| | |',
    '|---|---|',
    ...machine,
    '',
    '## Targets',
    '',
    ...(results.length > 0 ? [...summary, ''] : []),
    ...(setupTargets.length > 0 ? [...setupTargets, ''] : []),
    '## How it is measured',
    '',
    '- Each side runs as its own child process: `bench/gatehouse-server.ts` builds Gatehouse with ' +
      '`Gatehouse.create({config})` (embedded default: SQLite file in a fresh temporary data folder, in-process ' +
      'broker); `bench/baseline-server.ts` is Node’s `http` server + `ws` (`noServer`) + `jose` and nothing else. ' +
      'Load comes from another child process (`bench/load.ts`, `ws` clients); the orchestrator (`bench/run.ts`) only ' +
      'coordinates. Everything is on 127.0.0.1; the two sides never run at the same time.',
    '- **Server CPU** is `process.cpuUsage()` (user + system, all threads of the server process) read over IPC inside ' +
      'the server right before and right after a measured phase, divided by the operations of the phase. ' +
      '**Memory** is `process.memoryUsage().rss` (and `heapUsed`) read the same way once settled after forced GCs ' +
      '(`--expose-gc`); RSS moves by ±0.5 KiB per connection between runs, the heap reading much less.',
    '- Both servers verify the same HS256 tokens (same secret and `kid`; Gatehouse reads it from the keys file the ' +
      'bench writes into its data folder). Gatehouse verifies with its own node:crypto verifier and checks revocation ' +
      '(principal token version, login session) through its caches and SQLite; the baseline runs ' +
      '`jwtVerify(token, key, {issuer, audience, algorithms: ["HS256"]})`.',
    `- Gatehouse’s limits are raised for the bench, everything else is the default configuration: ` +
      `${Object.entries(BENCH_LIMITS)
        .map(([k, v]) => `\`limits.${k}: ${v}\``)
        .join(', ')}; \`log.level: warn\`; the \`replay\` scenario also sets \`messages.replayLimit: 10000\`.`,
    '- Throughputs (per second) are wall-clock numbers of a load generator that shares the two cores with the ' +
      'server, so they are bounded by the client as much as by the server; CPU per operation is the server’s own cost.',
    '- The baseline does only what its description says. Gatehouse does its whole job on the same work: rate limits, ' +
      'revocation checks, device slots, presence, offline replay on every authentication, metrics, and for messages ' +
      'membership checks and a SQLite commit (WAL, `synchronous=FULL`: an fsync per group commit) before every ack.',
    '- `cross-node` runs no baseline: within each run it measures three setups of Gatehouse (one node, two nodes ' +
      'over Redis, two nodes over NATS), all up at once and taking turns phase by phase. Each setup gets a ' +
      'fresh PostgreSQL database (`gh_bench_<random>`, created on `BENCH_POSTGRES_URL`, default ' +
      '`postgres://postgres@127.0.0.1:5432/test`, and dropped after), fresh `bench/gatehouse-server.ts` processes ' +
      'with `store.url` on that database, `broker.url` (`memory://` for one node), a `broker.prefix` and `nodeId` of ' +
      'their own and one keys file written by the orchestrator for every node, and a fresh load generator. Its server ' +
      'CPU is read as above in every node process and summed. A setup whose PostgreSQL, Redis or NATS is not ' +
      'reachable is skipped, and the report says so.',
    '- `BENCH_PROFILE_DIR=/tmp/prof npm run bench -- --scenario fanout --runs 1` also writes a `.cpuprofile` of ' +
      'each measured phase on Gatehouse’s side (of every node, for `cross-node`; the profiler’s own cost inflates ' +
      'that run’s numbers); `node bench/dist/profile-top.js /tmp/prof/*.cpuprofile` prints the functions with the ' +
      'most self time.',
    '',
    ...sections.flatMap((s) => [s, '']),
    ...(meta.notRun ?? []).flatMap((s) => [
      `## \`${s.name}\` — ${s.title}`,
      '',
      `Not run in the default bench; command: \`${s.command}\`.` +
        (s.document ? ` Its last results: [${s.document.replace(/^.*\//, '')}](${s.document}).` : ''),
      '',
    ]),
    // Its headings one level down: a section of this report (the file is bench/findings.md).
    ...(meta.findings ? [meta.findings.trim().replace(/^#/gm, '##'), ''] : []),
  ].join('\n');
  return { markdown, summary: console.join('\n') };
}
