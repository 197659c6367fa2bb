/**
 * `scale`: ~60,000 idle authenticated connections over three Gatehouse nodes on one
 * PostgreSQL (a fresh database per run) and Redis. Opt-in (`--scenario scale`): it holds
 * every socket the machine allows for about three minutes.
 *
 * The hard open-files limit applies per process, so one node holds at most the limit minus
 * the descriptors it needs itself, and the clients live in several load processes
 * (bench/scale-load.ts), each spreading its sockets over source addresses of its own in
 * 127.0.0.0/8 (one address has ~28,000 ephemeral ports).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  BENCH_ADMIN_KEY,
  type BenchKey,
  Child,
  median,
  percentile,
  type ServerStats,
  settledStats,
  sleep,
  writeKeysFile,
} from '../common.js';
import {
  brokerUnavailable,
  createDatabase,
  machineCpu,
  POSTGRES_URL,
  postgresUnavailable,
  REDIS_URL,
  reason,
} from './cross-node.js';
import { post } from './setup.js';
import type { SetupsRun, SetupsScenario } from './types.js';

const NODES = ['a', 'b', 'c'] as const;
/** Descriptors a process keeps for itself (stdio, IPC, epoll, PostgreSQL pool, Redis, files). */
const RESERVED_FDS = 100;
/** Sockets per node; default: as many as the open-files limit leaves (at most 20,000). */
const PER_NODE_OVERRIDE = Number(process.env.BENCH_SCALE_PER_NODE ?? 0);
const LOADS_OVERRIDE = Number(process.env.BENCH_SCALE_LOADS ?? 0);
const ADDRESSES_PER_LOAD = 4;
/** Handshakes in flight over all load processes. */
const CONCURRENCY = 200;
/** Connections per node opened (and kept) before the memory baseline, so it is read on a warm node. */
const WARM_PER_NODE = 300;
const GROUP_SIZE = 10_000;
/** The idle window: one default `ws.heartbeatInterval` (25 s), so every socket is pinged once in it. */
const IDLE_WINDOW_MS = 25_000;
const HEARTBEAT = '25 s';
/** An idle window with only the warm-up connections: what a node costs idle whatever its count. */
const BASE_IDLE_MS = 10_000;
const OUTAGE_MESSAGES = 3;
const RECONNECT_DEADLINE_MS = 240_000;
const DELIVERY_DEADLINE_MS = 30_000;
/** Sockets left free on a surviving node after it has taken its share of the killed node's clients. */
const SURVIVOR_MARGIN = 200;
const SCENARIO_DEADLINE_MS = 28 * 60_000;
const CONNECT_DEADLINE_MS = 18 * 60_000;

const now = () => performance.timeOrigin + performance.now();
const fdCount = (pid: number | undefined) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
};
/** The soft open-files limit a running process has (Linux). */
const softNofile = (pid: number | undefined) => {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    return Number(line?.split(/\s{2,}/)[1]);
  } catch {
    return Number.NaN;
  }
};
const sysctl = (name: string) => {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
  } catch {
    return [Number.NaN];
  }
};

/**
 * Raises this process's soft open-files limit to the hard one (`prlimit`), so the node and
 * load processes forked after it inherit it; answers the hard limit.
 */
function raiseOpenFiles(): number {
  const hard = Number(execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());
  if (!Number.isFinite(hard)) return softNofile(process.pid);
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`]);
  } catch (err) {
    console.error(`scale: could not raise the open-files limit (${reason(err)})`);
  }
  return hard;
}

interface Watched {
  members: number;
  seqs: { seq: number; have: number; duplicated: number; strangers: number; arrivals: number[] }[];
  replayed: number;
  live: number;
  outOfRange: number;
}

/** One layout of clients: which node, which load process, which groups. */
interface Layout {
  total: number;
  nodeOf(i: number): number;
  loadOf(i: number): number;
  /** The node list of client i: its own node, then the other two in an order that alternates. */
  nodesOf(i: number): number[];
}

function layout(perNode: number, loads: number): Layout {
  return {
    total: perNode * NODES.length,
    nodeOf: (i) => i % NODES.length,
    loadOf: (i) => i % loads,
    nodesOf: (i) => {
      const own = i % 3;
      return Math.floor(i / 3) % 2 === 0 ? [own, (own + 1) % 3, (own + 2) % 3] : [own, (own + 2) % 3, (own + 1) % 3];
    },
  };
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, k) => from + k);
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** Watched counts over every load process, merged. */
async function watched(loads: Child[], conversationId: string, arrivals = false): Promise<Watched> {
  const parts = await Promise.all(loads.map((l) => l.call<Watched>('watched', { conversationId, arrivals })));
  const first = parts[0] as Watched;
  return {
    members: sum(parts.map((p) => p.members)),
    replayed: sum(parts.map((p) => p.replayed)),
    live: sum(parts.map((p) => p.live)),
    outOfRange: sum(parts.map((p) => p.outOfRange)),
    seqs: first.seqs.map((s, k) => ({
      seq: s.seq,
      have: sum(parts.map((p) => p.seqs[k]?.have ?? 0)),
      duplicated: sum(parts.map((p) => p.seqs[k]?.duplicated ?? 0)),
      strangers: sum(parts.map((p) => p.seqs[k]?.strangers ?? 0)),
      arrivals: parts.flatMap((p) => p.seqs[k]?.arrivals ?? []),
    })),
  };
}

/** Member ids in requests whose bodies stay under the default `server.bodyLimit` (64 KiB). */
function chunks(ids: string[], maxBytes = 60_000): string[][] {
  const out: string[][] = [[]];
  let bytes = 0;
  for (const id of ids) {
    const current = out.at(-1) as string[];
    if (current.length > 0 && (bytes + id.length + 3 > maxBytes || current.length === 10_000)) {
      out.push([]);
      bytes = 0;
    }
    (out.at(-1) as string[]).push(id);
    bytes += id.length + 3;
  }
  return out;
}

/** `post`, again after 2 s on a 503 ("retry shortly": a busy PostgreSQL pool), for up to a minute. */
async function postRetrying(url: string, body: unknown): Promise<any> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    try {
      return await post(url, { 'x-admin-key': BENCH_ADMIN_KEY }, body);
    } catch (err) {
      if (!String(err).includes(': 503 ') || performance.now() >= deadline) throw err;
      await sleep(2_000);
    }
  }
}

/** A group with these members through the admin API (created with the first chunk, the rest added). */
async function createGroup(httpUrl: string, name: string, members: string[]): Promise<string> {
  const [first, ...rest] = chunks(members);
  const created = await postRetrying(`${httpUrl}/api/v1/conversations`, { kind: 'group', name, members: first });
  for (const chunk of rest)
    await postRetrying(`${httpUrl}/api/v1/conversations/${created.id}/members`, { members: chunk });
  return created.id as string;
}

/** Polls until `done` or the deadline; answers whether it got there. */
async function until(done: () => Promise<boolean>, deadlineMs: number, everyMs = 250): Promise<boolean> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    if (await done()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

interface LoadStatus {
  clients: number;
  perNode: number[];
  pings: number;
  cpuUs: number;
  rss: number;
  stopped: number;
  problems: string[];
}

/** One run: every measurement of the scenario, or a reason it could not run. */
async function scaleRun(key: BenchKey, log: (line: string) => void): Promise<SetupsRun> {
  const why =
    (await postgresUnavailable()) ?? (await brokerUnavailable({ name: 'redis', label: 'Redis', brokerUrl: REDIS_URL }));
  if (why) return { values: {}, skipped: { scale: why } };
  const hard = raiseOpenFiles();
  const capacity = Math.min(20_000, hard - RESERVED_FDS);
  const perNode = PER_NODE_OVERRIDE > 0 ? Math.min(PER_NODE_OVERRIDE, capacity) : capacity;
  const total = perNode * NODES.length;
  const loadCount = LOADS_OVERRIDE > 0 ? LOADS_OVERRIDE : Math.max(2, Math.ceil(total / Math.floor(capacity * 0.8)));
  if (Math.ceil(total / loadCount) > capacity)
    throw new Error(`${loadCount} load processes cannot hold ${total} sockets`);
  const plan = layout(perNode, loadCount);
  const prefix = `scale-${randomBytes(3).toString('hex')}-`;
  const id = (i: number) => `${prefix}${i}`;
  const values: SetupsRun['values'] = {};
  const scale: Record<string, number> = {};
  values.scale = scale;
  const [portLow, portHigh] = sysctl('net.ipv4.ip_local_port_range');
  values.machine = {
    hardNofile: hard,
    portLow: portLow as number,
    portHigh: portHigh as number,
    somaxconn: sysctl('net.core.somaxconn')[0] as number,
    loads: loadCount,
    addresses: loadCount * ADDRESSES_PER_LOAD,
    perNode,
  };

  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-scale-'));
  const keysFile = join(dir, 'keys.json');
  writeKeysFile(keysFile, key);
  const nodes: Child<{ port: number }>[] = [];
  const loads: Child[] = [];
  let database: { url: string; drop(): Promise<void> } | null = null;
  try {
    database = await createDatabase();
    const brokerPrefix = `gh-scale-${randomBytes(4).toString('hex')}`;
    const ports: number[] = [];
    // One after the other: the first node runs the migrations.
    for (const name of NODES) {
      const dataDir = join(dir, name);
      mkdirSync(dataDir);
      const node = new Child<{ port: number }>(
        `gatehouse-scale-${name}`,
        new URL('../gatehouse-server.js', import.meta.url),
        [
          JSON.stringify({
            dataDir,
            key,
            replayLimit: 500,
            storeUrl: database.url,
            brokerUrl: REDIS_URL,
            brokerPrefix,
            nodeId: `${brokerPrefix}-${name}`,
            keysFile,
          }),
        ],
        ['--expose-gc'],
      );
      nodes.push(node);
      ports.push((await node.ready).port);
    }
    const urls = ports.map((p) => `ws://127.0.0.1:${p}/ws`);
    const httpUrl = `http://127.0.0.1:${ports[0]}`;
    for (let l = 0; l < loadCount; l++)
      loads.push(new Child(`scale-load-${l}`, new URL('../scale-load.js', import.meta.url)));
    await Promise.all(loads.map((l) => l.ready));
    values.machine.nodeSoftNofile = Math.min(...nodes.map((n) => softNofile(n.pid)));
    values.machine.loadSoftNofile = Math.min(...loads.map((l) => softNofile(l.pid)));
    if (values.machine.nodeSoftNofile < perNode + 50)
      throw new Error(`the nodes' open-files limit is ${values.machine.nodeSoftNofile}, below ${perNode} sockets`);
    nodes.forEach((n, k) => {
      values[`node ${NODES[k]}`] = { fdsAtStart: fdCount(n.pid) };
    });
    const nodeValues = (k: number) => values[`node ${NODES[k]}`] as Record<string, number>;

    // Who is in which group: the first GROUP_SIZE of every stride-th client receive the group
    // message (spread evenly over the nodes), client 1 sends it; the killed node is C.
    const groupSender = 1;
    const stride = Math.max(1, Math.floor(total / GROUP_SIZE));
    const receivers = range(0, total)
      .filter((i) => i % stride === 0 && i !== groupSender)
      .slice(0, GROUP_SIZE);
    const killed = 2;
    const outageSender = 0;
    const killedClients = range(0, total).filter((i) => plan.nodeOf(i) === killed);
    const principals = [...new Set([groupSender, outageSender, ...receivers, ...killedClients])].map(id);
    let t0 = performance.now();
    await nodes[0]?.call('createUsers', { ids: principals }, 300_000);
    log(`${principals.length} principals in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    /** Connects these clients, each from its load process, all processes at once. */
    const connect = async (indexes: number[]) => {
      const results = await Promise.all(
        loads.map((load, l) =>
          load.call<{ connected: number; retried: number; problems: string[] }>(
            'connect',
            {
              urls,
              key,
              prefix,
              clients: indexes.filter((i) => plan.loadOf(i) === l).map((i) => ({ index: i, nodes: plan.nodesOf(i) })),
              addresses: range(1, ADDRESSES_PER_LOAD + 1).map((a) => `127.0.${10 + l}.${a}`),
              concurrency: Math.ceil(CONCURRENCY / loadCount),
              deadlineMs: CONNECT_DEADLINE_MS,
            },
            CONNECT_DEADLINE_MS + 60_000,
          ),
        ),
      );
      const connected = sum(results.map((r) => r.connected));
      if (connected < indexes.length)
        throw new Error(
          `${indexes.length - connected} of ${indexes.length} clients did not connect: ${results.flatMap((r) => r.problems).slice(0, 3)}`,
        );
      return { retried: sum(results.map((r) => r.retried)) };
    };
    /** With BENCH_PROFILE_DIR, a CPU profile of every node during `task` (the profiler's cost inflates it). */
    const profiled = async <T>(phase: string, task: () => Promise<T>): Promise<T> => {
      const profileDir = process.env.BENCH_PROFILE_DIR;
      if (!profileDir) return task();
      await Promise.all(nodes.map((n) => n.call('profileStart', { intervalUs: 100 })));
      const result = await task();
      mkdirSync(profileDir, { recursive: true });
      await Promise.all(
        nodes.map((n, k) =>
          n.call('profileStop', { file: join(profileDir, `scale-${phase}-${NODES[k]}-${process.pid}.cpuprofile`) }),
        ),
      );
      return result;
    };
    const openOn = async () =>
      Promise.all(nodes.map((n) => n.call<{ open: number }>('connections').then((c) => c.open)));
    const cpuOf = async (list: Child[]) =>
      Promise.all(list.map((n) => n.call<ServerStats>('stats').then((s) => s.cpuUs)));
    const loadStatus = async () => Promise.all(loads.map((l) => l.call<LoadStatus>('status')));

    // 1. Memory: warm-up connections, the settled baseline, then every other connection.
    const warm = range(0, WARM_PER_NODE * NODES.length);
    await connect(warm);
    const before = await Promise.all(nodes.map((n) => settledStats(n)));
    const openBefore = await openOn();
    const base0 = await cpuOf(nodes);
    t0 = performance.now();
    await sleep(BASE_IDLE_MS);
    const baseMs = performance.now() - t0;
    const base1 = await cpuOf(nodes);
    const cpuBefore = await cpuOf(nodes);
    const machineBefore = machineCpu();
    t0 = performance.now();
    const { retried } = await profiled('connect', () => connect(range(warm.length, total)));
    const connectMs = performance.now() - t0;
    const cpuAfter = await cpuOf(nodes);
    const machineAfter = machineCpu();
    scale.connectMachineBusy =
      (100 * (machineAfter.busy - machineBefore.busy)) / (machineAfter.total - machineBefore.total);
    const after = await Promise.all(nodes.map((n) => settledStats(n)));
    const openAfter = await openOn();
    const handshakes = sum(openAfter) - sum(openBefore);
    scale.connections = sum(openAfter);
    scale.handshakes = handshakes;
    scale.handshakesPerSec = (handshakes * 1000) / connectMs;
    scale.handshakeCpuUs = sum(cpuAfter.map((c, k) => c - (cpuBefore[k] as number))) / handshakes;
    scale.retriedHandshakes = retried;
    nodes.forEach((n, k) => {
      const v = nodeValues(k);
      const added = (openAfter[k] as number) - (openBefore[k] as number);
      v.connections = openAfter[k] as number;
      v.fds = fdCount(n.pid);
      v.rssBeforeMiB = (before[k] as ServerStats).rss / 2 ** 20;
      v.rssMiB = (after[k] as ServerStats).rss / 2 ** 20;
      v.rssPerConnKiB = ((after[k] as ServerStats).rss - (before[k] as ServerStats).rss) / added / 1024;
      v.heapPerConnKiB = ((after[k] as ServerStats).heapUsed - (before[k] as ServerStats).heapUsed) / added / 1024;
    });
    log(
      `${scale.connections} connections in ${(connectMs / 1000).toFixed(1)} s; RSS per connection ${nodes
        .map((_, k) => nodeValues(k).rssPerConnKiB?.toFixed(2))
        .join(' / ')} KiB`,
    );

    // 2. Idle: one heartbeat interval with nothing but pings, pongs and sweeps.
    await sleep(1_000);
    const idleCpu0 = await cpuOf(nodes);
    const idleLoad0 = await loadStatus();
    const machine0 = machineCpu();
    t0 = performance.now();
    await profiled('idle', () => sleep(IDLE_WINDOW_MS));
    const idleMs = performance.now() - t0;
    const idleCpu1 = await cpuOf(nodes);
    const idleLoad1 = await loadStatus();
    const machine1 = machineCpu();
    nodes.forEach((_, k) => {
      const v = nodeValues(k);
      v.idleCpuMsPerSec = ((idleCpu1[k] as number) - (idleCpu0[k] as number)) / idleMs;
      v.baseIdleCpuMsPerSec = ((base1[k] as number) - (base0[k] as number)) / baseMs;
    });
    scale.idleCpuMsPerSec = sum(nodes.map((_, k) => nodeValues(k).idleCpuMsPerSec as number));
    scale.baseIdleCpuMsPerSec = sum(nodes.map((_, k) => nodeValues(k).baseIdleCpuMsPerSec as number));
    scale.idlePings = sum(idleLoad1.map((s) => s.pings)) - sum(idleLoad0.map((s) => s.pings));
    scale.idleCpuUsPerPing = (scale.idleCpuMsPerSec * idleMs) / scale.idlePings;
    scale.idleLoadCpuMsPerSec = (sum(idleLoad1.map((s) => s.cpuUs)) - sum(idleLoad0.map((s) => s.cpuUs))) / idleMs;
    scale.idleMachineBusy = (100 * (machine1.busy - machine0.busy)) / (machine1.total - machine0.total);
    scale.loadRssMiB = sum(idleLoad1.map((s) => s.rss)) / 2 ** 20;
    log(
      `idle: ${scale.idleCpuMsPerSec.toFixed(1)} ms CPU/s on the nodes, ${scale.idlePings} pings in ${(idleMs / 1000).toFixed(1)} s, machine ${scale.idleMachineBusy.toFixed(0)}% busy`,
    );

    // 3. A group of GROUP_SIZE spread over the nodes: one message, then a second one. A phase
    // that fails is reported as such; the next one still runs.
    const skipped: SetupsRun['skipped'] = {};
    try {
      const group = await createGroup(httpUrl, 'scale', [id(groupSender), ...receivers.map(id)]);
      await Promise.all(loads.map((l) => l.call('watch', { conversationId: group, maxSeq: 2, members: receivers })));
      for (const seq of [1, 2]) {
        const sender = loads[plan.loadOf(groupSender)] as Child;
        const sent = await sender.call<{ sentAt: number; ackAt: number; seq: number }>('send', {
          from: groupSender,
          conversationId: group,
          tag: `${prefix}g${seq}`,
        });
        if (sent.seq !== seq) throw new Error(`group message got seq ${sent.seq}, expected ${seq}`);
        const complete = await until(
          async () => ((await watched(loads, group)).seqs[seq - 1]?.have ?? 0) >= receivers.length,
          DELIVERY_DEADLINE_MS,
          100,
        );
        // Late duplicates would show up within this.
        await sleep(1_000);
        const result = (await watched(loads, group, true)).seqs[seq - 1] as Watched['seqs'][number];
        const latencies = result.arrivals.map((t) => t - sent.sentAt).sort((a, b) => a - b);
        const key = seq === 1 ? 'group' : 'group2';
        scale[`${key}Receivers`] = receivers.length;
        scale[`${key}Received`] = result.have;
        scale[`${key}Duplicated`] = result.duplicated;
        scale[`${key}Strangers`] = result.strangers;
        scale[`${key}LastMs`] = complete ? (latencies.at(-1) ?? Number.NaN) : Number.NaN;
        scale[`${key}P50Ms`] = percentile(latencies, 50);
        scale[`${key}P99Ms`] = percentile(latencies, 99);
        scale[`${key}AckMs`] = sent.ackAt - sent.sentAt;
        log(
          `group message ${seq}: ${result.have}/${receivers.length} members, last after ${scale[`${key}LastMs`]?.toFixed(0)} ms, p50 ${scale[`${key}P50Ms`]?.toFixed(0)} ms, ${result.duplicated} duplicated`,
        );
      }
    } catch (err) {
      skipped.group = reason(err) ?? String(err);
      log(`group phase failed: ${skipped.group}`);
    }

    // 4. Node C killed. The other two must take its clients, so they shed clients first if the
    // open-files limit would not leave room for them (each keeps capacity − half of C's − margin).
    try {
      // The group of C's clients first, while the nodes are idle.
      const outage = await createGroup(httpUrl, 'outage', [id(outageSender), ...killedClients.map(id)]);
      await Promise.all(
        loads.map((l) => l.call('watch', { conversationId: outage, maxSeq: OUTAGE_MESSAGES, members: killedClients })),
      );
      const open4 = await openOn();
      const keep = Math.max(0, capacity - Math.ceil((open4[killed] as number) / 2) - SURVIVOR_MARGIN);
      const shed: number[] = [];
      for (const k of [0, 1]) {
        const excess = (open4[k] as number) - keep;
        if (excess <= 0) continue;
        const candidates = range(0, total)
          .filter((i) => plan.nodeOf(i) === k && i !== outageSender && i !== groupSender)
          .reverse();
        shed.push(...candidates.slice(0, excess));
      }
      await Promise.all(
        loads.map((l, li) => l.call('close', { indexes: shed.filter((i) => plan.loadOf(i) === li) }, 60_000)),
      );
      await until(async () => {
        const open = await openOn();
        return (open[0] as number) <= keep && (open[1] as number) <= keep;
      }, 20_000);
      // Each close releases a device slot and a presence count in PostgreSQL: let that drain.
      await sleep(5_000);
      const openAtKill = await openOn();
      scale.killedSockets = openAtKill[killed] as number;
      scale.survivorsBeforeA = openAtKill[0] as number;
      scale.survivorsBeforeB = openAtKill[1] as number;
      scale.shed = shed.length;
      const markAt = now();
      await Promise.all(loads.map((l) => l.call('markOutage', { at: markAt })));
      const victim = nodes[killed] as Child;
      process.kill(victim.pid as number, 'SIGKILL');
      const killAt = now();
      await victim.ready.catch(() => {});
      await victim.stop();
      // Messages to every client of the killed node while they are away (sent from node A).
      const senderLoad = loads[plan.loadOf(outageSender)] as Child;
      const sentAt: number[] = [];
      for (let k = 1; k <= OUTAGE_MESSAGES; k++) {
        const sent = await senderLoad.call<{ sentAt: number; seq: number }>('send', {
          from: outageSender,
          conversationId: outage,
          tag: `${prefix}o${k}`,
        });
        sentAt.push(sent.sentAt - killAt);
      }
      scale.outageSentLastMs = sentAt.at(-1) as number;
      type Back = {
        back: number[];
        replayedAt: number[];
        perNode: number[];
        replayed: number;
        replayFailed: number;
        attempts: number;
        stopped: Record<string, number>;
      };
      const reconnected = async () => {
        const parts = await Promise.all(
          loads.map((l) => l.call<Back>('reconnected', { indexes: killedClients }, 60_000)),
        );
        return {
          back: parts.flatMap((p) => p.back),
          replayedAt: parts.flatMap((p) => p.replayedAt),
          perNode: NODES.map((_, k) => sum(parts.map((p) => p.perNode[k] ?? 0))),
          replayed: sum(parts.map((p) => p.replayed)),
          replayFailed: sum(parts.map((p) => p.replayFailed)),
          attempts: sum(parts.map((p) => p.attempts)),
          stopped: sum(parts.flatMap((p) => Object.values(p.stopped))),
          replaced: sum(
            parts.flatMap((p) =>
              Object.entries(p.stopped)
                .filter(([k]) => k.startsWith('4409'))
                .map(([, v]) => v),
            ),
          ),
        };
      };
      const allBack = await until(
        async () => {
          // Done when every client is back with its replay over (or failed), or has stopped.
          const r = await reconnected();
          return r.back.length + r.stopped >= killedClients.length && r.replayed + r.replayFailed >= r.back.length;
        },
        RECONNECT_DEADLINE_MS,
        500,
      );
      await sleep(1_000);
      const r = await reconnected();
      const w = await watched(loads, outage, true);
      const back = r.back.map((t) => t - killAt).sort((a, b) => a - b);
      scale.killedClients = killedClients.length;
      scale.back = back.length;
      scale.notBack = killedClients.length - back.length;
      scale.backP50Ms = percentile(back, 50);
      scale.backP99Ms = percentile(back, 99);
      scale.backMaxMs = back.at(-1) ?? Number.NaN;
      scale.replayedMaxMs = Math.max(...r.replayedAt.map((t) => t - killAt));
      scale.backOnA = r.perNode[0] as number;
      scale.backOnB = r.perNode[1] as number;
      scale.attempts = r.attempts;
      scale.stopped = r.stopped;
      scale.stoppedReplaced = r.replaced;
      scale.replayFailed = r.replayFailed;
      scale.outageMessages = OUTAGE_MESSAGES;
      scale.outageExpected = killedClients.length * OUTAGE_MESSAGES;
      scale.outageReceived = sum(w.seqs.map((s) => s.have));
      scale.outageDuplicated = sum(w.seqs.map((s) => s.duplicated));
      scale.outageStrangers = sum(w.seqs.map((s) => s.strangers));
      scale.outageViaReplay = w.replayed;
      scale.outageLive = w.live;
      scale.outageAllMs = Math.max(...w.seqs.flatMap((s) => s.arrivals.map((t) => t - killAt)));
      scale.disturbed = sum(
        await Promise.all(
          loads.map((l) =>
            l.call<{ disturbed: number }>('disturbed', { except: killedClients }).then((d) => d.disturbed),
          ),
        ),
      );
      const openAfterKill = await Promise.all(
        nodes.slice(0, 2).map((n) => n.call<{ open: number }>('connections').then((c) => c.open)),
      );
      scale.survivorsAfterA = openAfterKill[0] as number;
      scale.survivorsAfterB = openAfterKill[1] as number;
      scale.survivorFdsMax = Math.max(fdCount(nodes[0]?.pid), fdCount(nodes[1]?.pid));
      scale.complete = allBack ? 1 : 0;
      log(
        `node C killed with ${scale.killedSockets} sockets: ${back.length}/${killedClients.length} back (A ${scale.backOnA}, B ${scale.backOnB}), ` +
          `last after ${scale.backMaxMs.toFixed(0)} ms, p50 ${scale.backP50Ms.toFixed(0)} ms; outage messages ${scale.outageReceived}/${scale.outageExpected} ` +
          `(${w.replayed} frames by replay, ${w.live} live, ${scale.outageDuplicated} duplicated)`,
      );
      const problems = (await loadStatus()).flatMap((s) => s.problems);
      if (problems.length > 0) log(`load problems: ${problems.slice(0, 5).join('; ')}`);
    } catch (err) {
      skipped.kill = reason(err) ?? String(err);
      log(`node-kill phase failed: ${skipped.kill}`);
    }
    return { values, skipped };
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
    for (const node of nodes) await node.stop();
    await database?.drop().catch((err) => console.error(`bench: could not drop a bench database: ${reason(err)}`));
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (value: number | undefined, digits = 0): string =>
  value !== undefined && Number.isFinite(value)
    ? value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : 'n/a';
const medianOf = (runs: SetupsRun[], setup: string, key: string) =>
  median(runs.map((r) => r.values[setup]?.[key] ?? Number.NaN));
const seconds = (ms: number) => `${fmt(ms / 1000, 1)} s`;

const TITLE = 'Scale: ~60,000 idle authenticated connections over three nodes (PostgreSQL + Redis)';
export const SCALE_COMMAND = 'npm run bench -- --scenario scale --runs 1';

function section(runs: SetupsRun[]): string {
  const ran = runs.filter((r) => r.values.scale);
  const reasons = [...new Set(runs.flatMap((r) => Object.values(r.skipped)))];
  const head = [`## \`scale\` — ${TITLE}`, ''];
  if (ran.length === 0) return [...head, `**Skipped** (${reasons.join('; ') || 'no run'}).`].join('\n');
  const m = (key: string) => medianOf(ran, 'machine', key);
  const s = (key: string) => medianOf(ran, 'scale', key);
  const n = (node: string, key: string) => medianOf(ran, `node ${node}`, key);
  const label = ran.length === 1 ? 'One run (no median)' : `Medians of ${ran.length} runs`;
  const perNode = m('perNode');
  const total = perNode * NODES.length;
  const group = (key: string, what: string) => {
    const receivers = s(`${key}Receivers`);
    const exact = s(`${key}Received`) === receivers && s(`${key}Duplicated`) === 0 && s(`${key}Strangers`) === 0;
    return `| ${what} | ${fmt(receivers)} | ${fmt(s(`${key}Received`))} | ${fmt(s(`${key}Duplicated`))} | ${fmt(s(`${key}AckMs`), 1)} ms | ${fmt(s(`${key}P50Ms`), 1)} ms | ${fmt(s(`${key}P99Ms`), 1)} ms | ${fmt(s(`${key}LastMs`), 1)} ms | ${exact ? 'yes' : '**no**'} |`;
  };
  const lost = s('outageExpected') - s('outageReceived');
  /** A phase that failed in every run: why (its table is left out). */
  const failed = (phase: string, key: string) =>
    ran.every((r) => r.values.scale?.[key] === undefined)
      ? `**Not measured**: ${[...new Set(ran.map((r) => r.skipped[phase] ?? 'no result'))].join('; ')}`
      : null;
  const groupFailed = failed('group', 'groupReceivers');
  const killFailed = failed('kill', 'killedClients');
  return [
    ...head,
    `Not part of the default \`npm run bench\` (it holds every socket the machine allows, and its ~80,000 handshakes on PostgreSQL take minutes: this run took ${fmt(s('runMinutes'), 1)} min); run it with \`${SCALE_COMMAND}\`.`,
    '',
    describe(perNode),
    '',
    `${label}. ${fmt(total)} clients: ${fmt(perNode)} per node, the most the hard open-files limit of ${fmt(m('hardNofile'))} per process leaves ` +
      `(each node keeps ~${RESERVED_FDS} descriptors for itself: stdio, IPC, PostgreSQL pool, Redis, files)${total < 60_000 ? '; 60,000 would need 20,000 sockets on each node, more than that limit allows' : ''}.`,
    '',
    '### Memory and idle CPU per node',
    '',
    '| | node A | node B | node C |',
    '|---|---:|---:|---:|',
    `| idle authenticated connections | ${NODES.map((x) => fmt(n(x, 'connections'))).join(' | ')} |`,
    `| open descriptors (sockets + the node's own) | ${NODES.map((x) => fmt(n(x, 'fds'))).join(' | ')} |`,
    `| RSS, settled, with ${fmt(WARM_PER_NODE)} warm-up connections | ${NODES.map((x) => `${fmt(n(x, 'rssBeforeMiB'), 1)} MiB`).join(' | ')} |`,
    `| RSS, settled, with every connection | ${NODES.map((x) => `${fmt(n(x, 'rssMiB'), 1)} MiB`).join(' | ')} |`,
    `| **RSS per idle authenticated connection** | ${NODES.map((x) => `**${fmt(n(x, 'rssPerConnKiB'), 2)} KiB**`).join(' | ')} |`,
    `| JS heap per connection | ${NODES.map((x) => `${fmt(n(x, 'heapPerConnKiB'), 2)} KiB`).join(' | ')} |`,
    `| **CPU while idle** (heartbeat ${HEARTBEAT}, sweep 1 s) | ${NODES.map((x) => `**${fmt(n(x, 'idleCpuMsPerSec'), 1)} ms/s**`).join(' | ')} |`,
    `| CPU while idle with only the ${fmt(WARM_PER_NODE)} warm-up connections (${seconds(BASE_IDLE_MS)}) | ${NODES.map((x) => `${fmt(n(x, 'baseIdleCpuMsPerSec'), 1)} ms/s`).join(' | ')} |`,
    '',
    `Idle, all three nodes: **${fmt(s('idleCpuMsPerSec'), 1)} ms of CPU per second** (${fmt(s('idleCpuMsPerSec') / 10, 2)}% of one core) over ` +
      `${seconds(IDLE_WINDOW_MS)} = one heartbeat interval, in which the clients answered ${fmt(s('idlePings'))} pings ` +
      `(${fmt(s('idleCpuUsPerPing'), 1)} µs of node CPU per ping, the per-second sweeps included). With only the warm-up connections ` +
      `the three nodes used ${fmt(s('baseIdleCpuMsPerSec'), 1)} ms/s (timers, the cluster heartbeat in PostgreSQL, the bench’s own ` +
      `100-ms handshake counter), so the heartbeat of the ${fmt(s('connections'))} sockets costs about ` +
      `${fmt(s('idleCpuMsPerSec') - s('baseIdleCpuMsPerSec'), 1)} ms/s. The ${fmt(m('loads'))} load processes used ` +
      `${fmt(s('idleLoadCpuMsPerSec'), 1)} ms/s meanwhile (${fmt(s('loadRssMiB'))} MiB RSS in all); the machine was ${fmt(s('idleMachineBusy'))}% busy ` +
      '(both cores, every process, including whatever else ran on this shared machine).',
    '',
    `Connecting: ${fmt(s('handshakes'))} authenticated handshakes in ${seconds((s('handshakes') * 1000) / s('handshakesPerSec'))} ` +
      `(${fmt(s('handshakesPerSec'))}/s with ${CONCURRENCY} in flight; ${fmt(s('handshakeCpuUs'))} µs of node CPU each, all nodes; each claims its device slot and ` +
      `counts its presence in PostgreSQL); ${fmt(s('retriedHandshakes'))} needed a second attempt; the machine was ${fmt(s('connectMachineBusy'))}% busy meanwhile.`,
    '',
    '### One message to a group of 10,000 members over the three nodes',
    '',
    ...(groupFailed
      ? [groupFailed]
      : [
          '| message | receivers | received | duplicated | sender’s ack | delivery p50 | p99 | last delivery | every member exactly once |',
          '|---|---:|---:|---:|---:|---:|---:|---:|---|',
          group('group', 'first (member list not yet cached)'),
          group('group2', 'second'),
          '',
          'Times count from the sender writing the `message` frame to each member’s `message` frame (every process reads the same clock).',
        ]),
    '',
    '### Node C killed (SIGKILL)',
    '',
    ...(killFailed
      ? [killFailed]
      : [
          '| | |',
          '|---|---:|',
          `| sockets on node C when killed | ${fmt(s('killedSockets'))} |`,
          `| sockets on nodes A / B before (after shedding ${fmt(s('shed'))} clients to leave room) | ${fmt(s('survivorsBeforeA'))} / ${fmt(s('survivorsBeforeB'))} |`,
          s('notBack') === 0
            ? `| **time until every client of C is connected elsewhere** (last client) | **${seconds(s('backMaxMs'))}** |`
            : `| **time until every client of C is connected elsewhere** | **not reached**: ${fmt(s('notBack'))} not back when the bench stopped waiting (${RECONNECT_DEADLINE_MS / 1000} s after the outage messages; the last of the others was back ${seconds(s('backMaxMs'))} after the kill) |`,
          `| p50 / p99 | ${seconds(s('backP50Ms'))} / ${seconds(s('backP99Ms'))} |`,
          `| clients back on A / B | ${fmt(s('backOnA'))} / ${fmt(s('backOnB'))} |`,
          `| clients not back then | ${fmt(s('notBack'))}, of which ${fmt(s('stoppedReplaced'))} stopped on a 4409 \`REPLACED\` (${fmt(s('stopped'))} stopped in all) |`,
          `| connection attempts after the kill (incl. failed ones) | ${fmt(s('attempts'))} |`,
          `| clients of A and B that had to reconnect | ${fmt(s('disturbed'))} |`,
          `| messages sent to C’s clients after the kill (group of all of them, from a client on A) | ${fmt(s('outageMessages'))}, the last ${seconds(s('outageSentLastMs'))} after the kill |`,
          `| **received after reconnecting** (client × message) | **${fmt(s('outageReceived'))} of ${fmt(s('outageExpected'))}**: ${lost === 0 ? 'nothing lost' : `**${fmt(lost)} not received**`} |`,
          `| … of the clients back: received / expected | ${fmt(s('outageReceived'))} / ${fmt(s('back') * s('outageMessages'))} (the rest: their replay failed, below, or was not over when the bench stopped waiting) |`,
          `| clients back whose replay failed (an \`error\` frame STORE_UNAVAILABLE, “offline replay failed; reconnect to retry”; the SDK reports it and stays connected, so does this client) | ${fmt(s('replayFailed'))} |`,
          `| … frames by offline replay / live | ${fmt(s('outageViaReplay'))} / ${fmt(s('outageLive'))} |`,
          `| … duplicated (same seq twice to one client: delivery is at-least-once, the SDK drops such a frame by seq) | ${fmt(s('outageDuplicated'))} |`,
          `| ${lost === 0 ? 'time until every client had every message' : 'last arrival of a message sent during the outage (clients back)'} | ${seconds(s('outageAllMs'))} |`,
          `| ${s('notBack') === 0 ? 'time until every replay was over' : 'last replay over, of the clients back'} (\`offline_messages_complete\`) | ${seconds(s('replayedMaxMs'))} |`,
          `| sockets on A / B afterwards | ${fmt(s('survivorsAfterA'))} / ${fmt(s('survivorsAfterB'))} |`,
        ]),
    '',
    '### Machine limits used',
    '',
    '| | |',
    '|---|---|',
    `| open files (hard; soft raised to it with \`prlimit\` for the bench’s processes) | ${fmt(m('hardNofile'))} (nodes’ soft limit: ${fmt(m('nodeSoftNofile'))}; load processes’: ${fmt(m('loadSoftNofile'))}) |`,
    `| \`net.ipv4.ip_local_port_range\` | ${m('portLow')}–${m('portHigh')} (${fmt(m('portHigh') - m('portLow') + 1)} ports per source address) |`,
    `| \`net.core.somaxconn\` | ${fmt(m('somaxconn'))} |`,
    `| load processes × source addresses | ${fmt(m('loads'))} × ${ADDRESSES_PER_LOAD} (127.0.10.1 … 127.0.${9 + m('loads')}.${ADDRESSES_PER_LOAD}) |`,
  ].join('\n');
}

function describe(perNode: number): string {
  return (
    `Three Gatehouse processes (\`bench/gatehouse-server.ts\`, each on its own port) share one fresh PostgreSQL database ` +
    `(\`store.url\`, created on \`${POSTGRES_URL}\` and dropped after) and Redis (\`broker.url\` \`${REDIS_URL}\`, a ` +
    'prefix of their own); every other setting is the bench’s (raised limits, default heartbeat). Clients are bare `ws` ' +
    'sockets with their own minted user token on `/ws`, held by several load processes (`bench/scale-load.ts`, no more ' +
    'than the open-files limit allows each), each binding its sockets to four source addresses of its own in 127.0.0.0/8. ' +
    `Client i connects to node i mod 3 (${fmt(perNode)} per node). The group’s members and C’s clients are created as ` +
    'principals in the store first. Memory: RSS and heap read inside each node once settled after forced GCs (as the ' +
    `\`handshake\` scenario does), first with ${WARM_PER_NODE} warm-up connections, then with all; the difference ÷ the added ` +
    `connections. Idle CPU: \`process.cpuUsage()\` of each node over ${seconds(IDLE_WINDOW_MS)} (the default ` +
    '`ws.heartbeatInterval`, so each socket is pinged once; the sweep runs every second). Group: a client not in it sends ' +
    `one message (then a second) to a group of the sender and ${fmt(GROUP_SIZE)} other clients, every third of them on each ` +
    'node; each member’s frames are counted per seq. Kill: nodes A and B first close enough of their clients (the highest ' +
    'numbers) to take C’s without passing the limit, a group of all of C’s clients is created, then C gets SIGKILL and a client ' +
    `on A sends ${OUTAGE_MESSAGES} messages to that group, one after the other (each once the last is acked). C’s clients reconnect as the SDK does: the delay of ` +
    'attempt n is the SDK’s `backoffDelay(DEFAULT_BACKOFF, n, closePolicy(code).delay)` (for the 1006 of a dead node: random ' +
    'in [0, min(10 s, 1 s · 2^(n−1)))), an attempt times out after 15 s, and each failed attempt moves on to the next node ' +
    'of the client’s own list (its own node first, then the other two in alternating order: C, A, B or C, B, A for C’s clients), as a client configured with every node’s address would. ' +
    'They never ack, so what they missed comes back by the offline replay of the node they reach.'
  );
}

export const scaleScenario: SetupsScenario = {
  kind: 'setups',
  name: 'scale',
  title: TITLE,
  optIn: SCALE_COMMAND,
  async run({ run, runs, key }) {
    const t0 = Date.now();
    const log = (line: string) =>
      console.log(`run ${run}/${runs} scale ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s ${line}`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`scale: not done after ${SCENARIO_DEADLINE_MS / 60_000} minutes`)),
        SCENARIO_DEADLINE_MS,
      );
    });
    try {
      const result = await Promise.race([scaleRun(key, log), deadline]);
      if (result.values.scale) result.values.scale.runMinutes = (Date.now() - t0) / 60_000;
      for (const [, why] of Object.entries(result.skipped)) log(`skipped: ${why}`);
      return result;
    } finally {
      clearTimeout(timer);
    }
  },
  report(runs) {
    const s = (key: string) =>
      medianOf(
        runs.filter((r) => r.values.scale),
        'scale',
        key,
      );
    const ran = runs.some((r) => r.values.scale);
    return {
      targets: [],
      section: section(runs),
      console: ran
        ? [
            `scale: ${fmt(s('connections'))} connections, RSS/conn ${NODES.map((x) => fmt(medianOf(runs, `node ${x}`, 'rssPerConnKiB'), 2)).join('/')} KiB, ` +
              `idle ${fmt(s('idleCpuMsPerSec'), 1)} ms/s, group last ${fmt(s('groupLastMs'))} ms (p50 ${fmt(s('groupP50Ms'))}), ` +
              `kill: all back in ${fmt(s('backMaxMs'))} ms, ${fmt(s('outageReceived'))}/${fmt(s('outageExpected'))} outage messages`,
          ]
        : [`scale skipped: ${runs.flatMap((r) => Object.values(r.skipped)).join('; ')}`],
    };
  },
  // A run with BENCH_SCALE_PER_NODE (a smaller try) leaves the committed document alone.
  document:
    PER_NODE_OVERRIDE > 0
      ? undefined
      : {
          file: 'docs/scale.md',
          render: (runs, meta) =>
            [
              '# Scale: three nodes, ~60,000 idle connections',
              '',
              '<!-- Generated by the `scale` scenario of bench/run.ts; do not edit by hand: re-run the command below. -->',
              '',
              `Measured on ${meta.started.toISOString().slice(0, 10)} (${meta.started.toISOString()}) with:`,
              '',
              '```sh',
              'npm ci',
              meta.command,
              '```',
              '',
              '## Machine',
              '',
              '| | |',
              '|---|---|',
              ...meta.machine,
              '',
              'The machine is shared: other work may have run on the same two cores during the run.',
              '',
              section(runs).replace(/^## /, '## Results: '),
              '',
            ].join('\n'),
        },
};
