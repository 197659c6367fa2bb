import { settledStats, sleep } from '../common.js';
import { measured, type Scenario, type SideContext } from './types.js';

const CONNECTIONS = 10_000;
const REJECTED = 3_000;
const WARMUP = 1_000;
const CONCURRENCY = 50;

interface HandshakeResult {
  count: number;
  failed: number;
  firstError: string;
  wallMs: number;
}

async function handshakes(
  ctx: SideContext,
  name: string,
  count: number,
  options: { keep?: boolean; refuse?: boolean },
): Promise<{ result: HandshakeResult; cpuUs: number }> {
  // Every handshake presents its own freshly minted token (own sub, sid and jti), minted
  // before the clock starts, so no verification cache can help either server.
  await ctx.load.call('mintTokens', {
    name,
    key: ctx.key,
    prefix: `${name}-`,
    count,
    bad: options.refuse ?? false,
  });
  const measurement = await measured(ctx, () =>
    ctx.load.call<HandshakeResult>('handshakes', {
      url: `${ctx.wsUrl}/ws`,
      tokens: name,
      concurrency: CONCURRENCY,
      keep: options.keep ?? false,
      refuse: options.refuse ?? false,
    }),
  );
  if (measurement.result.failed > 0)
    throw new Error(`${name}: ${measurement.result.failed} handshakes failed (${measurement.result.firstError})`);
  return measurement;
}

export const handshake: Scenario = {
  name: 'handshake',
  title: 'Authenticated handshakes',
  describe: () =>
    `The load generator opens WebSockets to \`/ws\` with \`Authorization: Bearer <jwt>\`, ${CONCURRENCY} handshakes in flight. ` +
    `Every handshake carries its **own unique token** (its own \`sub\`, \`sid\` and \`jti\`, HS256 with a \`kid\`, minted ` +
    'before the clock starts with the same secret for both servers), so no token or revocation cache can help either side. ' +
    `A handshake counts when the client has the \`connected\` frame. Warm-up: ${WARMUP} accepted and 300 rejected ` +
    `handshakes (closed again). Then ${REJECTED} rejected handshakes (signature tampered: HTTP 401), then ` +
    `${CONNECTIONS.toLocaleString('en')} accepted handshakes that stay open; memory per idle connection is ` +
    `(RSS with ${CONNECTIONS.toLocaleString('en')} idle connections − RSS before them) ÷ ${CONNECTIONS.toLocaleString('en')}, ` +
    'both read once settled (a forced GC every 500 ms until two readings agree within 0.5%).',
  metrics: [
    { key: 'authPerSec', label: 'authenticated handshakes/s', unit: '/s', better: 'higher', digits: 0 },
    {
      key: 'authCpuUs',
      label: 'server CPU per authenticated handshake (incl. `connected`)',
      unit: 'µs',
      better: 'lower',
      digits: 1,
      maxRatio: 0.8,
    },
    { key: 'rejectPerSec', label: 'rejected handshakes/s (bad signature)', unit: '/s', better: 'higher', digits: 0 },
    { key: 'rejectCpuUs', label: 'server CPU per rejected handshake', unit: 'µs', better: 'lower', digits: 1 },
    {
      key: 'memPerConn',
      label: `RSS per idle authenticated connection (at ${CONNECTIONS.toLocaleString('en')})`,
      unit: 'KiB',
      better: 'lower',
      digits: 2,
      maxRatio: 0.6,
    },
    { key: 'heapPerConn', label: 'JS heap per idle authenticated connection', unit: 'KiB', better: 'lower', digits: 2 },
  ],
  async run(ctx) {
    await handshakes(ctx, 'warm', WARMUP, {});
    await handshakes(ctx, 'warmbad', 300, { refuse: true });
    await sleep(500);
    const rejected = await handshakes(ctx, 'bad', REJECTED, { refuse: true });
    const before = await settledStats(ctx.server);
    const accepted = await handshakes(ctx, 'conn', CONNECTIONS, { keep: true });
    const after = await settledStats(ctx.server);
    await ctx.load.call('closeHeld', undefined, 60_000);
    return {
      authPerSec: (accepted.result.count * 1000) / accepted.result.wallMs,
      authCpuUs: accepted.cpuUs / accepted.result.count,
      rejectPerSec: (rejected.result.count * 1000) / rejected.result.wallMs,
      rejectCpuUs: rejected.cpuUs / rejected.result.count,
      memPerConn: (after.rss - before.rss) / CONNECTIONS / 1024,
      heapPerConn: (after.heapUsed - before.heapUsed) / CONNECTIONS / 1024,
    };
  },
};
