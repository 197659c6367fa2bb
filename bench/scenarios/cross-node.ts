import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type BenchKey, Child, median, percentile, type ServerStats, sleep, writeKeysFile } from '../common.js';
import { principals } from './setup.js';
import type { SetupsRun, SetupsScenario, SideContext } from './types.js';

/** The servers the cluster setups use; an empty value skips what needs it. */
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';

const PAIRS = 50;
/** The offered load of the target (messages/s in total). */
const TARGET_RATE = 10_000;
/** A lower load, measured too (how the added latency changes with the load). */
const LOWER_RATE = 5_000;
/** A light load, far from saturating the two cores: what the broker hop itself adds. */
const LIGHT_RATE = 1_000;
const RATES = [TARGET_RATE, LOWER_RATE, LIGHT_RATE];
/**
 * Every setup stays up for the whole run and the phases take turns (setup by setup, the
 * order reversed every round), so a change in the machine's load meets every setup alike.
 */
const ROUNDS = 6;
const PHASE_MS = 1_000;
const WARMUP = { rate: 2_000, durationMs: 1_000 };
/** The target: cross-node p50 at most this much above single-node p50. */
const MAX_ADDED_P50_MS = 1;
/** A load counts as sustained when deliveries keep up with at least this share of it. */
const SUSTAINED_SHARE = 0.95;

type SetupName = 'single' | 'redis' | 'nats';
export interface Setup {
  name: SetupName;
  label: string;
  /** `null`: one node with the in-process broker. */
  brokerUrl: string | null;
}
const SETUPS: Setup[] = [
  { name: 'single', label: 'one node', brokerUrl: null },
  { name: 'redis', label: 'two nodes, Redis', brokerUrl: REDIS_URL },
  { name: 'nats', label: 'two nodes, NATS', brokerUrl: NATS_URL },
];
const CROSS: SetupName[] = ['redis', 'nats'];

export const hostOf = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};
export const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

async function withPostgres<T>(url: string, task: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await task(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Why no setup can run here (PostgreSQL not configured or not reachable), or null. */
export async function postgresUnavailable(): Promise<string | null> {
  if (!POSTGRES_URL) return 'BENCH_POSTGRES_URL is empty';
  try {
    await withPostgres(POSTGRES_URL, (client) => client.query('SELECT 1'));
    return null;
  } catch (err) {
    return `PostgreSQL (${hostOf(POSTGRES_URL)}) is not reachable: ${reason(err)}`;
  }
}

/** Why this setup's broker cannot be used here (not configured or not reachable), or null. */
export async function brokerUnavailable(setup: Setup): Promise<string | null> {
  if (setup.name === 'redis') {
    if (!REDIS_URL) return 'BENCH_REDIS_URL is empty';
    const client = new Redis(REDIS_URL, {
      lazyConnect: true,
      connectTimeout: 3_000,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
    } catch (err) {
      return `Redis (${hostOf(REDIS_URL)}) is not reachable: ${reason(err)}`;
    } finally {
      client.disconnect();
    }
  }
  if (setup.name === 'nats') {
    if (!NATS_URL) return 'BENCH_NATS_URL is empty';
    try {
      const nc = await natsConnect({ servers: NATS_URL, timeout: 3_000, reconnect: false });
      await nc.flush();
      await nc.close();
    } catch (err) {
      return `NATS (${hostOf(NATS_URL)}) is not reachable: ${reason(err)}`;
    }
  }
  return null;
}

/** A fresh database on the PostgreSQL server (one per setup and run), dropped afterwards. */
export async function createDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `gh_bench_${randomBytes(6).toString('hex')}`;
  await withPostgres(POSTGRES_URL, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await withPostgres(POSTGRES_URL, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** The machine's CPU time so far (all cores, in clock ticks): busy and total, from /proc/stat (Linux). */
export function machineCpu(): { busy: number; total: number } {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const total = fields.reduce((a, b) => a + b, 0);
    // idle + iowait are not busy.
    return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

interface LatencyResult {
  sent: number;
  delivered: number;
  errors: number;
  offeredRate: number;
  deliveredMs: number;
  latencies: number[];
}

/** What the phases of one setup at one rate add up to. */
class Tally {
  latencies: number[] = [];
  sent = 0;
  sendMs = 0;
  deliveredMs = 0;
  cpuUs = 0;
  /** Node B's part of cpuUs (two nodes only). */
  cpuUsB = Number.NaN;
  machineBusy = 0;
  machineTotal = 0;

  values(): Record<string, number> {
    const sorted = this.latencies.sort((a, b) => a - b);
    return {
      offered: (this.sent * 1000) / this.sendMs,
      delivered: (this.sent * 1000) / this.deliveredMs,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      cpuUs: this.cpuUs / this.sent,
      cpuUsB: this.cpuUsB / this.sent,
      busy: (100 * this.machineBusy) / this.machineTotal,
    };
  }
}

/** A setup whose processes are up: its database, its nodes, its users' sockets in the load generator. */
interface Running {
  setup: Setup;
  nodes: Child<{ port: number }>[];
  pairs: [string, string][];
  tallies: Map<number, Tally>;
  stop(): Promise<void>;
}

/** Starts a setup: fresh database, fresh node processes (A, and B for two nodes), users, sockets. */
async function start(setup: Setup, key: BenchKey, load: Child): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-cluster-'));
  const keysFile = join(dir, 'keys.json');
  writeKeysFile(keysFile, key);
  const nodes: Child<{ port: number }>[] = [];
  let database: { url: string; drop(): Promise<void> } | null = null;
  const stop = async () => {
    for (const node of nodes) await node.stop();
    await database?.drop().catch((err) => console.error(`bench: could not drop a bench database: ${reason(err)}`));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    database = await createDatabase();
    const prefix = `gh-bench-${randomBytes(4).toString('hex')}`;
    const extra = (process.env.BENCH_GATEHOUSE_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const ports: number[] = [];
    // One after the other: the first node runs the migrations, the second finds them done.
    for (const name of setup.brokerUrl ? ['a', 'b'] : ['a']) {
      const dataDir = join(dir, name);
      mkdirSync(dataDir);
      const node = new Child<{ port: number }>(
        `gatehouse-${setup.name}-${name}`,
        new URL('../gatehouse-server.js', import.meta.url),
        [
          JSON.stringify({
            dataDir,
            key,
            replayLimit: 500,
            storeUrl: database.url,
            brokerUrl: setup.brokerUrl ?? 'memory://',
            brokerPrefix: prefix,
            nodeId: `${prefix}-${name}`,
            keysFile,
          }),
        ],
        ['--expose-gc', ...extra],
      );
      nodes.push(node);
      ports.push((await node.ready).port);
    }
    const [a, b] = [ports[0] as number, ports.at(-1) as number];
    const ctx: SideContext = {
      side: 'gatehouse',
      key,
      server: nodes[0] as Child,
      load,
      httpUrl: `http://127.0.0.1:${a}`,
      wsUrl: `ws://127.0.0.1:${a}`,
    };
    const pairs: [string, string][] = [];
    for (let i = 0; i < PAIRS; i++) pairs.push([`${setup.name}a${i}`, `${setup.name}b${i}`]);
    const users = await principals(ctx, pairs.flat(), 'im_web');
    const senders = new Set(pairs.map(([s]) => s));
    // Senders on node A, their peers on node B (the same node for one node).
    await load.call('openUsers', {
      url: `ws://127.0.0.1:${a}/ws`,
      users: users.filter((u) => senders.has(u.id)),
      deviceType: 'im_web',
    });
    await load.call('openUsers', {
      url: `ws://127.0.0.1:${b}/ws`,
      users: users.filter((u) => !senders.has(u.id)),
      deviceType: 'im_web',
    });
    // Warm-up: creates the direct conversations and fills the caches.
    await load.call('directLatency', { pairs, ...WARMUP, tag: 'w', oneWay: true });
    return { setup, nodes, pairs, tallies: new Map(RATES.map((rate) => [rate, new Tally()])), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One paced phase on one setup; the other setups stay idle meanwhile. */
async function phase(running: Running, load: Child, rate: number, tag: string, profile: boolean): Promise<void> {
  const { nodes, setup } = running;
  const profileDir = profile ? process.env.BENCH_PROFILE_DIR : undefined;
  if (profileDir) await Promise.all(nodes.map((n) => n.call('profileStart', { intervalUs: 50 })));
  const before = await Promise.all(nodes.map((n) => n.call<ServerStats>('stats')));
  const machineBefore = machineCpu();
  const result = await load.call<LatencyResult>('directLatency', {
    pairs: running.pairs,
    rate,
    durationMs: PHASE_MS,
    tag,
    oneWay: true,
    samples: true,
  });
  const machineAfter = machineCpu();
  const after = await Promise.all(nodes.map((n) => n.call<ServerStats>('stats')));
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    await Promise.all(
      nodes.map((n, i) =>
        n.call('profileStop', {
          file: join(profileDir, `cross-node-${setup.name}-${'ab'[i]}-${rate}-${process.pid}.cpuprofile`),
        }),
      ),
    );
  }
  if (result.delivered < result.sent || result.errors > 0)
    throw new Error(
      `${setup.name} at ${rate}/s: ${result.delivered}/${result.sent} delivered, ${result.errors} errors`,
    );
  const tally = running.tallies.get(rate) as Tally;
  for (const latency of result.latencies) tally.latencies.push(latency);
  tally.sent += result.sent;
  tally.sendMs += (result.sent * 1000) / result.offeredRate;
  tally.deliveredMs += result.deliveredMs;
  const used = after.map((s, i) => s.cpuUs - (before[i] as ServerStats).cpuUs);
  tally.cpuUs += used.reduce((a, b) => a + b, 0);
  if (used.length > 1) tally.cpuUsB = (Number.isNaN(tally.cpuUsB) ? 0 : tally.cpuUsB) + (used[1] as number);
  tally.machineBusy += machineAfter.busy - machineBefore.busy;
  tally.machineTotal += machineAfter.total - machineBefore.total;
}

interface Metric {
  key: string;
  label: string;
  unit: 'ms' | 'µs' | '/s' | '%';
  digits: number;
  /** How a cross-node value is set against the one-node value of the same run. */
  compare: 'difference' | 'ratio' | 'none';
}

const rate = (n: number) => n.toLocaleString('en');
const METRICS: Metric[] = [
  {
    key: 'offered',
    label: `messages/s sent, ${rate(TARGET_RATE)}/s offered`,
    unit: '/s',
    digits: 0,
    compare: 'ratio',
  },
  {
    key: 'delivered',
    label: `deliveries/s at ${rate(TARGET_RATE)} msg/s offered`,
    unit: '/s',
    digits: 0,
    compare: 'ratio',
  },
  { key: 'p50', label: `latency p50 at ${rate(TARGET_RATE)} msg/s`, unit: 'ms', digits: 2, compare: 'difference' },
  { key: 'p99', label: `latency p99 at ${rate(TARGET_RATE)} msg/s`, unit: 'ms', digits: 2, compare: 'difference' },
  {
    key: 'cpuUs',
    label: `server CPU per message, all nodes, at ${rate(TARGET_RATE)} msg/s`,
    unit: 'µs',
    digits: 1,
    compare: 'ratio',
  },
  {
    key: 'cpuUsB',
    label: 'of which node B (receives from the broker, delivers)',
    unit: 'µs',
    digits: 1,
    compare: 'none',
  },
  {
    key: 'busy',
    label: `machine CPU in use at ${rate(TARGET_RATE)} msg/s (every process, 100% = both cores)`,
    unit: '%',
    digits: 0,
    compare: 'difference',
  },
  {
    key: 'lowDelivered',
    label: `deliveries/s at ${rate(LOWER_RATE)} msg/s offered`,
    unit: '/s',
    digits: 0,
    compare: 'ratio',
  },
  { key: 'lowP50', label: `latency p50 at ${rate(LOWER_RATE)} msg/s`, unit: 'ms', digits: 2, compare: 'difference' },
  { key: 'lowP99', label: `latency p99 at ${rate(LOWER_RATE)} msg/s`, unit: 'ms', digits: 2, compare: 'difference' },
  {
    key: 'lowCpuUs',
    label: `server CPU per message, all nodes, at ${rate(LOWER_RATE)} msg/s`,
    unit: 'µs',
    digits: 1,
    compare: 'ratio',
  },
  {
    key: 'lowBusy',
    label: `machine CPU in use at ${rate(LOWER_RATE)} msg/s`,
    unit: '%',
    digits: 0,
    compare: 'difference',
  },
  { key: 'lightP50', label: `latency p50 at ${rate(LIGHT_RATE)} msg/s`, unit: 'ms', digits: 2, compare: 'difference' },
  { key: 'lightP99', label: `latency p99 at ${rate(LIGHT_RATE)} msg/s`, unit: 'ms', digits: 2, compare: 'difference' },
  {
    key: 'lightBusy',
    label: `machine CPU in use at ${rate(LIGHT_RATE)} msg/s`,
    unit: '%',
    digits: 0,
    compare: 'difference',
  },
];

const metric = (key: string) => METRICS.find((m) => m.key === key) as Metric;
const fmt = (value: number, digits: number): string =>
  Number.isFinite(value)
    ? value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : 'n/a';
const withUnit = (metric: Metric, value: number) =>
  Number.isFinite(value)
    ? `${fmt(value, metric.digits)}${metric.unit === '/s' || metric.unit === '%' ? '' : ' '}${metric.unit}`
    : 'n/a';
/** A difference; of a share in %, in percentage points. */
const signed = (metric: Metric, value: number) => {
  if (!Number.isFinite(value)) return 'n/a';
  const size = Math.abs(value);
  return `${value >= 0 ? '+' : '−'}${metric.unit === '%' ? `${fmt(size, metric.digits)} points` : withUnit(metric, size)}`;
};

/** The median over runs of one setup's value. */
function medianOf(runs: SetupsRun[], setup: SetupName, key: string): number {
  return median(runs.map((r) => r.values[setup]?.[key] ?? Number.NaN));
}

/** The median over runs of (cross-node − one node) or (cross-node ÷ one node), each taken within its run. */
function comparedOf(runs: SetupsRun[], setup: SetupName, metric: Metric): number {
  return median(
    runs.map((r) => {
      const cross = r.values[setup]?.[metric.key] ?? Number.NaN;
      const single = r.values.single?.[metric.key] ?? Number.NaN;
      return metric.compare === 'difference' ? cross - single : cross / single;
    }),
  );
}
const comparedText = (metric: Metric, value: number) => {
  if (metric.compare === 'none') return '';
  if (metric.compare === 'difference') return signed(metric, value);
  return Number.isFinite(value) ? `${fmt(value, 2)}×` : 'n/a';
};

/** The target's verdict for one broker (with the reason when the load was not sustained). */
function verdict(runs: SetupsRun[], setup: SetupName): string {
  const skipped = runs.every((r) => r.values[setup] === undefined);
  if (skipped) return 'skipped';
  const added = comparedOf(runs, setup, metric('p50'));
  const met = added <= MAX_ADDED_P50_MS ? 'met' : '**missed**';
  const notSustained = (['single', setup] as SetupName[]).filter(
    (s) => medianOf(runs, s, 'delivered') < SUSTAINED_SHARE * TARGET_RATE,
  );
  if (notSustained.length === 0) return met;
  const which = notSustained
    .map((s) => `${SETUPS.find((x) => x.name === s)?.label}: ${rate(Math.round(medianOf(runs, s, 'delivered')))}/s`)
    .join(', ');
  return `${met}, but ${rate(TARGET_RATE)}/s was not sustained (${which} delivered)`;
}

const TITLE = 'Cross-node delivery (Redis, NATS) against one node';

export const crossNode: SetupsScenario = {
  kind: 'setups',
  name: 'cross-node',
  title: TITLE,
  async run({ run, runs, key }) {
    const values: SetupsRun['values'] = {};
    const skipped: SetupsRun['skipped'] = {};
    const t0 = Date.now();
    const load = new Child('load', new URL('../load.js', import.meta.url));
    const running: Running[] = [];
    try {
      await load.ready;
      const postgresDown = await postgresUnavailable();
      for (const setup of SETUPS) {
        const why = postgresDown ?? (await brokerUnavailable(setup));
        if (why) {
          skipped[setup.name] = why;
          console.log(`run ${run}/${runs} cross-node ${setup.name.padEnd(6)} skipped: ${why}`);
        } else running.push(await start(setup, key, load));
      }
      // The first round's order rotates from run to run; each round reverses the one before.
      const order = running.map((_, i) => running[(i + run - 1) % running.length] as Running);
      for (const rate of RATES)
        for (let round = 0; round < ROUNDS; round++) {
          for (const setup of round % 2 === 0 ? order : [...order].reverse()) {
            await phase(setup, load, rate, `${rate}-${round}`, round === 0);
            await sleep(100);
          }
        }
      for (const { setup, tallies } of running) {
        const high = (tallies.get(TARGET_RATE) as Tally).values();
        const low = (tallies.get(LOWER_RATE) as Tally).values();
        const light = (tallies.get(LIGHT_RATE) as Tally).values();
        values[setup.name] = {
          ...high,
          lowDelivered: low.delivered as number,
          lowP50: low.p50 as number,
          lowP99: low.p99 as number,
          lowCpuUs: low.cpuUs as number,
          lowBusy: low.busy as number,
          lightP50: light.p50 as number,
          lightP99: light.p99 as number,
          lightBusy: light.busy as number,
        };
        console.log(
          `run ${run}/${runs} cross-node ${setup.name.padEnd(6)} ` +
            Object.entries(values[setup.name] as Record<string, number>)
              .map(([k, v]) => `${k}=${Number(v.toPrecision(4))}`)
              .join(' '),
        );
      }
      await load.call('closeUsers');
    } finally {
      await load.stop();
      for (const r of running) await r.stop();
    }
    console.log(`run ${run}/${runs} cross-node ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    return { values, skipped };
  },
  report(runs) {
    const label = (s: SetupName) => (SETUPS.find((x) => x.name === s) as Setup).label;
    const ran = (s: SetupName) => runs.some((r) => r.values[s] !== undefined);
    const reasons = [...new Set(runs.flatMap((r) => Object.entries(r.skipped).map(([s, why]) => `${s}: ${why}`)))];
    const [p50, p99, cpu] = [metric('p50'), metric('p99'), metric('cpuUs')];
    const targets = CROSS.map((s) => ({
      metric: `latency p50 added, ${label(s)}, at ${rate(TARGET_RATE)} msg/s offered`,
      reference: withUnit(p50, medianOf(runs, 'single', 'p50')),
      measured: withUnit(p50, medianOf(runs, s, 'p50')),
      difference: ran(s) && ran('single') ? comparedText(p50, comparedOf(runs, s, p50)) : 'n/a',
      target: `≤ +${MAX_ADDED_P50_MS} ms`,
      result: ran('single') ? verdict(runs, s) : 'skipped',
    }));
    const table = [
      `| metric | ${label('single')} | ${CROSS.map((s) => `${label(s)} | ${s === 'redis' ? 'Redis' : 'NATS'} vs one node`).join(' | ')} | target |`,
      `|---|---:|${CROSS.map(() => '---:|---:').join('|')}|---|`,
      ...METRICS.map((m) => {
        const cells = CROSS.map((s) =>
          ran(s)
            ? `${withUnit(m, medianOf(runs, s, m.key))} | ${comparedText(m, comparedOf(runs, s, m))}`
            : 'skipped | ',
        );
        const target =
          m.key === 'p50'
            ? `≤ +${MAX_ADDED_P50_MS} ms: ${CROSS.map((s) => `${s} ${verdict(runs, s)}`).join('; ')}`
            : '';
        return `| ${m.label} | ${ran('single') ? withUnit(m, medianOf(runs, 'single', m.key)) : 'skipped'} | ${cells.join(' | ')} | ${target} |`;
      }),
    ];
    const perRun = [
      `| run | setup | ${METRICS.map((m) => `${m.key} (${m.unit})`).join(' | ')} |`,
      `|---|---|${METRICS.map(() => '---:').join('|')}|`,
    ];
    runs.forEach((r, i) => {
      for (const setup of SETUPS) {
        const v = r.values[setup.name];
        perRun.push(
          v
            ? `| ${i + 1} | ${setup.name} | ${METRICS.map((m) => fmt(v[m.key] ?? Number.NaN, m.digits)).join(' | ')} |`
            : `| ${i + 1} | ${setup.name} | skipped |${METRICS.slice(1)
                .map(() => ' |')
                .join('')}`,
        );
      }
    });
    const section = [
      `## \`cross-node\` — ${TITLE}`,
      '',
      describe(),
      '',
      ...(reasons.length > 0 ? [`**Skipped** (${reasons.join('; ')}).`, ''] : []),
      `Medians of ${runs.length} run${runs.length === 1 ? '' : 's'} (a difference or ratio is taken within each run, ` +
        'then its median):',
      '',
      ...table,
      '',
      '<details><summary>Every run</summary>',
      '',
      ...perRun,
      '',
      '</details>',
    ].join('\n');
    const console = [
      ...CROSS.filter((s) => ran(s) && ran('single')).map(
        (s) =>
          `cross-node ${s.padEnd(6)} p50 ${fmt(medianOf(runs, s, 'p50'), 2)} ms vs one node ${fmt(medianOf(runs, 'single', 'p50'), 2)} ms ` +
          `(added ${comparedText(p50, comparedOf(runs, s, p50))}), p99 added ${comparedText(p99, comparedOf(runs, s, p99))}, ` +
          `CPU ${comparedText(cpu, comparedOf(runs, s, cpu))}  target ≤ +${MAX_ADDED_P50_MS} ms: ${verdict(runs, s).replaceAll('*', '')}`,
      ),
      ...reasons.map((r) => `cross-node skipped ${r}`),
    ];
    return { targets, section, console };
  },
};

function describe(): string {
  return (
    'The same direct-message traffic through three setups of Gatehouse in one run, each on a fresh PostgreSQL ' +
    'database (`store.url`, created for it and dropped after): **one node** with the in-process broker; ' +
    '**two nodes, Redis**: two Gatehouse processes on the same database and keys file with `broker.url` ' +
    `${REDIS_URL ? `\`${REDIS_URL}\`` : 'Redis'} and a \`broker.prefix\` of their own; **two nodes, NATS**: the ` +
    `same with ${NATS_URL ? `\`${NATS_URL}\`` : 'NATS'}. Each setup has ${PAIRS} pairs of users of its own (device ` +
    'type `im_web`, logged in through the open API); the first of each pair sends, the second receives. With two ' +
    'nodes every sender is connected to node A and every receiver to node B, so every message is stored and acked ' +
    'on A and crosses the broker to reach its peer on B. The load is paced (a tick every 5 ms): ' +
    `${rate(TARGET_RATE)} messages/s in total (${TARGET_RATE / PAIRS}/s per sender; \`message\` frames with \`to\`, ` +
    `64-byte text), then ${rate(LOWER_RATE)}/s, then ${rate(LIGHT_RATE)}/s (far from saturating the machine: what the broker hop itself adds). All three setups are up for the whole run (an idle setup costs ` +
    `next to nothing) and take turns: ${ROUNDS} rounds of one ${PHASE_MS / 1000}-s phase per setup, the order ` +
    'reversed every round and rotated from run to run, so a change in the machine’s load meets every setup alike; ' +
    `each setup had a warm-up of ${rate(WARMUP.rate)}/s for ${WARMUP.durationMs / 1000} s. Latency is send → the ` +
    "peer's `message` (both ends in the load generator, one clock), p50/p99 over every message of a setup's phases " +
    'at that rate. Deliveries/s is every delivery ÷ the time from the first send to the last delivery of each phase: ' +
    'it falls below the offered load when a backlog builds up; a load counts as sustained when it reaches ' +
    `${Math.round(SUSTAINED_SHARE * 100)}% of it. Server CPU is \`process.cpuUsage()\` of every Gatehouse process of ` +
    'the setup, summed, ÷ messages; PostgreSQL, Redis and NATS are not in it, but they are in the machine’s CPU in ' +
    'use (from `/proc/stat`, every process: nodes, databases, brokers, load generator, on the same two cores). The ' +
    `target: cross-node p50 within +${MAX_ADDED_P50_MS} ms of one node at ${rate(TARGET_RATE)} messages/s offered. ` +
    'A setup whose PostgreSQL, Redis or NATS is not reachable is skipped and the report says so ' +
    '(`BENCH_POSTGRES_URL`, `BENCH_REDIS_URL`, `BENCH_NATS_URL`; by default the local servers on their standard ports).'
  );
}
