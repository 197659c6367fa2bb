import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BenchKey, Child, median } from '../common.js';
import type { SetupsRun, SetupsScenario } from './types.js';

const CLIENTS = Number(process.env.BENCH_STORM_CLIENTS ?? 5_000);
/** Source addresses 127.0.0.2… the clients spread over (ephemeral ports per address run out near 28,000). */
const ADDRESSES = 8;
/** No client may take longer than this to be back; one that does has given up, for the report. */
const DEADLINE_MS = 60_000;
const TARGET_BACK_MS = 30_000;
const TARGET_PEAK_RATIO = 0.25;

type Strategy = 'naive' | 'sdk';
const STRATEGIES: { name: Strategy; label: string }[] = [
  { name: 'naive', label: 'naive: fixed 1 s, no jitter' },
  { name: 'sdk', label: 'SDK defaults (15 s spread)' },
];
const METRICS = [
  { key: 'restartMs', label: 'restart: stop began → new node listening', unit: 'ms', digits: 0 },
  { key: 'p50', label: 'time until back, p50', unit: 'ms', digits: 0 },
  { key: 'p99', label: 'time until back, p99', unit: 'ms', digits: 0 },
  { key: 'max', label: 'time until back, last client', unit: 'ms', digits: 0 },
  { key: 'notBack', label: `clients not back after ${DEADLINE_MS / 1000} s`, unit: '', digits: 0 },
  { key: 'peakPerSec', label: 'peak handshakes/s seen by the restarted server (1 s window)', unit: '/s', digits: 0 },
  { key: 'refused', label: 'handshakes refused by the server', unit: '', digits: 0 },
  { key: 'attempts', label: 'connection attempts by the clients after the restart began', unit: '', digits: 0 },
] as const;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

interface HandshakeStats {
  peakPerSec: number;
  ok: number;
  refused: number;
}

/** One strategy: N clients connected, the server stopped gracefully (1001) and started again on the same port. */
async function storm(strategy: Strategy, key: BenchKey): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-storm-'));
  const port = await freePort();
  const serverArgs = [JSON.stringify({ dataDir, key, replayLimit: 500, port })];
  const serverFile = new URL('../gatehouse-server.js', import.meta.url);
  let server = new Child<{ port: number }>('gatehouse-server', serverFile, serverArgs);
  const load = new Child('storm-load', new URL('../storm-load.js', import.meta.url));
  try {
    await Promise.all([server.ready, load.ready]);
    await load.call(
      'connect',
      { url: `ws://127.0.0.1:${port}/ws`, key, count: CLIENTS, strategy, addresses: ADDRESSES, concurrency: 50 },
      300_000,
    );
    const stopAt = performance.now();
    await load.call('markDown');
    const before = await server.call<HandshakeStats>('shutdown');
    await server.stop();
    server = new Child<{ port: number }>('gatehouse-server', serverFile, serverArgs);
    await server.ready;
    const restartMs = performance.now() - stopAt;
    const back = await load.call<Record<string, number>>('waitBack', { timeoutMs: DEADLINE_MS }, DEADLINE_MS + 30_000);
    const after = await server.call<HandshakeStats>('handshakeStats');
    await load.call('closeAll');
    return { ...back, restartMs, peakPerSec: after.peakPerSec, refused: before.refused + after.refused };
  } finally {
    await load.stop();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || Number.isNaN(v) ? 'n/a' : v.toLocaleString('en', { maximumFractionDigits: digits });
const medianOf = (runs: SetupsRun[], s: Strategy, k: string) =>
  median(runs.map((r) => r.values[s]?.[k]).filter((v): v is number => v !== undefined));

export const reconnectStorm: SetupsScenario = {
  kind: 'setups',
  name: 'reconnect-storm',
  title: `Reconnect storm: ${CLIENTS.toLocaleString('en')} clients, server restarted`,

  async run({ key }) {
    const values: SetupsRun['values'] = {};
    for (const s of STRATEGIES) {
      values[s.name] = await storm(s.name, key);
      console.log(
        `reconnect-storm ${s.name.padEnd(5)} ${Object.entries(values[s.name] as Record<string, number>)
          .map(([k, v]) => `${k}=${Math.round(v)}`)
          .join(' ')}`,
      );
    }
    return { values, skipped: {} };
  },

  report(runs) {
    const ratio = median(runs.map((r) => (r.values.sdk?.peakPerSec ?? Number.NaN) / (r.values.naive?.peakPerSec ?? 1)));
    const p99 = medianOf(runs, 'sdk', 'p99');
    const notBack = Math.max(...runs.map((r) => r.values.sdk?.notBack ?? Number.NaN));
    const pass = (ok: boolean) => (ok ? 'met' : '**missed**');
    const targets = [
      {
        metric: 'reconnect storm: SDK clients back (p99)',
        reference: `${fmt(medianOf(runs, 'naive', 'p99'))} ms (naive)`,
        measured: `${fmt(p99)} ms`,
        difference: '',
        target: `≤ ${TARGET_BACK_MS / 1000} s, none gives up`,
        result: pass(p99 <= TARGET_BACK_MS && notBack === 0),
      },
      {
        metric: 'reconnect storm: peak handshake rate, SDK ÷ naive',
        reference: `${fmt(medianOf(runs, 'naive', 'peakPerSec'))}/s`,
        measured: `${fmt(medianOf(runs, 'sdk', 'peakPerSec'))}/s`,
        difference: `${ratio.toFixed(2)}×`,
        target: `≤ ${TARGET_PEAK_RATIO}×`,
        result: pass(ratio <= TARGET_PEAK_RATIO),
      },
    ];
    const table = [
      `| metric | ${STRATEGIES.map((s) => s.label).join(' | ')} |`,
      `|---|${STRATEGIES.map(() => '---:').join('|')}|`,
      ...METRICS.map(
        (m) =>
          `| ${m.label} | ${STRATEGIES.map((s) => `${fmt(medianOf(runs, s.name, m.key), m.digits)}${m.unit ? ` ${m.unit}` : ''}`).join(' | ')} |`,
      ),
    ];
    const section = [
      `## \`reconnect-storm\` — ${this.title}`,
      '',
      `${CLIENTS.toLocaleString('en')} clients (user tokens, \`/ws\`, spread over ${ADDRESSES} source addresses ` +
        '127.0.0.2–9) are connected to one Gatehouse node; the node is stopped gracefully (every socket closes with ' +
        '1001) and a new process starts on the same port and data folder. Time until back counts from the moment the ' +
        'stop began to each client having its `connected` frame again (the restart itself is included). The ' +
        'restarted server counts handshakes every 100 ms; the peak is the largest count in ten consecutive samples ' +
        '(a 1 s window, longer when the busy node runs its timer late: a stall of the node counts as one sample). Naive is ' +
        'the hand-written loop (`onclose` → reconnect after exactly 1 s, forever); SDK is `GatehouseClient` with ' +
        'its defaults (1001: each client draws a random place in the 15 s spread window and, while the node is ' +
        'down, tries again one window later, until connected). The restart itself (old process closing its ' +
        'sockets and exiting, new one listening) is a row of its own: every client waits for it.',
      '',
      `Medians of ${runs.length} run${runs.length === 1 ? '' : 's'}:`,
      '',
      ...table,
      '',
      '| run | naive peak/s | SDK peak/s | SDK ÷ naive | naive p99 (ms) | SDK p99 (ms) |',
      '|---|---:|---:|---:|---:|---:|',
      ...runs.map((r, i) => {
        const [n, k] = [r.values.naive ?? {}, r.values.sdk ?? {}];
        const q = (k.peakPerSec ?? Number.NaN) / (n.peakPerSec ?? Number.NaN);
        return `| ${i + 1} | ${fmt(n.peakPerSec)} | ${fmt(k.peakPerSec)} | ${q.toFixed(2)}× | ${fmt(n.p99)} | ${fmt(k.p99)} |`;
      }),
      '',
    ].join('\n');
    return {
      targets,
      section,
      console: [
        `reconnect-storm: SDK p99 back ${fmt(p99)} ms, peak ${fmt(medianOf(runs, 'sdk', 'peakPerSec'))}/s vs naive ${fmt(medianOf(runs, 'naive', 'peakPerSec'))}/s (${ratio.toFixed(2)}×)`,
      ],
    };
  },
};
