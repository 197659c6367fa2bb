/**
 * `gatehouse bench URL`: loads any deployment with SDK clients — N clients over several source
 * addresses, M messages/s between them for T seconds — and prints the connect rate, delivery
 * latency (p50/p99) and errors by close code, with a progress line while it runs.
 */
import { parseArgs } from 'node:util';
import { GatehouseClient, type GatehouseClientError } from '@gatehouse/client';
import WebSocket from 'ws';
import { parseDuration } from './duration.js';

export const BENCH_USAGE = `gatehouse bench URL [--clients 100] [--rate 100] [--duration 10s]
                 (--app-key KEY | --admin-key KEY) [--addresses 4] [--path /ws]

  URL          the deployment, http(s)://host:port (REST and WebSocket on the same origin)
  --clients    SDK clients to connect (in pairs that write to each other)
  --rate       messages per second in total, spread over the clients
  --duration   how long to send (e.g. 10s, 1m)
  --app-key    mint user tokens through the open API with this app key, or
  --admin-key  create a bench app key with the admin key first
  --addresses  source addresses 127.0.0.2… to spread clients over (loopback targets only)
  --path       the user endpoint (default /ws)`;

const OPTIONS = {
  clients: { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string' },
  'app-key': { type: 'string' },
  'admin-key': { type: 'string' },
  addresses: { type: 'string' },
  path: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class BenchUsageError extends Error {}

function positiveInt(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new BenchUsageError(`--${name} must be a positive integer`);
  return n;
}

async function postJson(url: string, headers: Record<string, string>, body: unknown): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json().catch(() => null)) as any;
  if (!res.ok) throw new Error(`POST ${new URL(url).pathname}: HTTP ${res.status} ${json?.error ?? json?.msg ?? ''}`);
  return json;
}

/** Runs `fn` for 0..count-1, `concurrency` at a time. */
async function pool(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(count, concurrency) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number);

/** The bench command; returns the exit code (0: ran without errors, 1: errors seen, 2: usage). */
export async function benchCommand(argv: string[], out: (line: string) => void = console.log): Promise<number> {
  let flags: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];
  let positionals: string[];
  try {
    ({ values: flags, positionals } = parseArgs({
      args: argv,
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    out(`${(err as Error).message}\n\n${BENCH_USAGE}`);
    return 2;
  }
  if (flags.help) {
    out(BENCH_USAGE);
    return 0;
  }
  let settings: { base: URL; clients: number; rate: number; durationMs: number; addresses: number; path: string };
  try {
    const [target] = positionals;
    if (!target) throw new BenchUsageError('URL is required');
    const base = new URL(target.replace(/^ws/, 'http'));
    if (!flags['app-key'] && !flags['admin-key']) throw new BenchUsageError('give --app-key or --admin-key');
    settings = {
      base,
      clients: Math.max(2, positiveInt(flags.clients, 100, 'clients')),
      rate: positiveInt(flags.rate, 100, 'rate'),
      durationMs: parseDuration(flags.duration ?? '10s', '--duration'),
      addresses: positiveInt(flags.addresses, 4, 'addresses'),
      path: flags.path ?? '/ws',
    };
  } catch (err) {
    out(`${(err as Error).message}\n\n${BENCH_USAGE}`);
    return 2;
  }
  const { base, clients: count, rate, durationMs, addresses, path } = settings;
  const origin = base.origin;
  const loopback = /^(127\.|localhost$)/.test(base.hostname);
  const run = Math.random().toString(36).slice(2, 8);

  let appKey = flags['app-key'];
  if (!appKey) {
    const created = await postJson(
      `${origin}/api/v1/admin/app-keys`,
      { 'x-admin-key': flags['admin-key'] as string },
      { name: `gatehouse bench ${run}` },
    );
    appKey = created.key as string;
  }
  const tokenOf = async (i: number) => {
    const body = await postJson(
      `${origin}/openapi/v1/user/login`,
      { 'x-app-key': appKey as string },
      { id: `bench-${run}-${i}`, nickname: `Bench ${i}`, device: 'im_pc_win' },
    );
    return String(body.data.token).replace(/^Bearer /, '');
  };

  const closeCodes = new Map<string, number>();
  const count1 = (key: string) => closeCodes.set(key, (closeCodes.get(key) ?? 0) + 1);
  const printErrors = () => {
    if (closeCodes.size === 0) out('errors: none');
    else {
      out('errors by close code:');
      for (const [key, n] of [...closeCodes].sort((a, b) => b[1] - a[1])) out(`  ${key}: ${n}`);
    }
  };
  const latencies: number[] = [];
  let sent = 0;
  let acked = 0;
  let received = 0;
  let sendErrors = 0;
  const clients: GatehouseClient[] = [];
  const wsUrl = `${origin.replace(/^http/, 'ws')}${path}`;

  out(`bench ${origin}: ${count} clients, ${rate} msg/s, ${durationMs / 1000} s`);
  // Tokens first, so that the connect rate measures handshakes only.
  const tokens: string[] = [];
  try {
    await pool(count, 20, async (i) => {
      tokens[i] = await tokenOf(i);
    });
  } catch (err) {
    out(`could not get tokens: ${(err as Error).message}`);
    return 1;
  }
  const connectStarted = performance.now();
  try {
    await pool(count, 50, async (i) => {
      const token = tokens[i] as string;
      const client = new GatehouseClient({
        WebSocket: WebSocket as any,
        url: wsUrl,
        getToken: () => tokenOf(i),
        token,
        deviceType: 'im_pc_win',
        ...(loopback ? { localAddress: `127.0.0.${2 + (i % addresses)}` } : {}),
      });
      client.on('reconnecting', ({ code, reason }) => count1(`${code}${reason ? ` ${reason}` : ''}`));
      client.on('disconnected', ({ code, reason, willReconnect }) => {
        if (!willReconnect && code !== 1000) count1(`${code} ${reason} (stopped)`);
      });
      client.on('error', (err: GatehouseClientError) => count1(`error ${err.code}`));
      client.on('message', (message) => {
        received++;
        const t = (message.data as { t?: number } | undefined)?.t;
        if (typeof t === 'number') latencies.push(performance.now() + performance.timeOrigin - t);
      });
      clients[i] = client;
      await client.connect();
    });
  } catch (err) {
    out(`could not connect the clients: ${(err as Error).message}`);
    for (const c of clients) c?.close();
    printErrors();
    return 1;
  }
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  out(`connected ${count} clients in ${connectSeconds.toFixed(2)} s (${Math.round(count / connectSeconds)}/s)`);

  // Each client writes to its pair (0↔1, 2↔3, …); the peer's id is known, so the first send creates the conversation.
  const peerOf = (i: number) => (i % 2 === 0 ? Math.min(i + 1, count - 1) : i - 1);
  const started = performance.now();
  let next = 0;
  let due = 0;
  const tickMs = 10;
  const printProgress = () => {
    const sorted = [...latencies].sort((a, b) => a - b);
    process.stderr.write(
      `\r${((performance.now() - started) / 1000).toFixed(0)} s  sent ${sent}  acked ${acked}  received ${received}  ` +
        `p50 ${percentile(sorted, 50).toFixed(1)} ms  errors ${[...closeCodes.values()].reduce((a, b) => a + b, 0) + sendErrors}   `,
    );
  };
  const progress = setInterval(printProgress, 1000);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      if (elapsed >= durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      due += (rate * tickMs) / 1000;
      while (due >= 1) {
        due--;
        const i = next++ % count;
        const client = clients[i] as GatehouseClient;
        sent++;
        client
          .send({ to: `bench-${run}-${peerOf(i)}` }, 'bench', { t: performance.now() + performance.timeOrigin })
          .then(
            () => {
              acked++;
            },
            (err: GatehouseClientError) => {
              sendErrors++;
              count1(`send ${err.code}`);
            },
          );
      }
    }, tickMs);
  });
  // Let the last messages arrive (bounded).
  const settleUntil = performance.now() + 5000;
  while ((acked + sendErrors < sent || received < acked) && performance.now() < settleUntil)
    await new Promise((r) => setTimeout(r, 50));
  clearInterval(progress);
  // The last state, always: a run shorter than the interval would otherwise show no line at all.
  printProgress();
  process.stderr.write('\n');
  for (const c of clients) c.close();

  const sorted = latencies.sort((a, b) => a - b);
  out(`messages: sent ${sent}, acked ${acked}, received ${received}`);
  out(`delivery latency: p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms`);
  printErrors();
  return closeCodes.size === 0 ? 0 : 1;
}
