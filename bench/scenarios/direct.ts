import { principals } from './setup.js';
import { measured, type Scenario } from './types.js';

const PAIRS = 50;
const PER_USER = 400;
const WINDOW = 8;
const RATE = 4_000;
const LATENCY_MS = 3_000;

export const direct: Scenario = {
  name: 'direct',
  title: 'Direct messages between pairs',
  describe: () =>
    `${PAIRS} pairs of users (${PAIRS * 2} sockets, device type \`im_web\`). Each user sends \`message\` frames with \`to\` ` +
    `(its peer), \`text\` (64 bytes) and a unique \`client_msg_id\`; the sender gets \`ack\`, the peer gets \`message\`. ` +
    `Gatehouse stores every message (group commit, SQLite) before acking; the baseline parses the JSON, replies an ` +
    `ack-shaped frame and forwards a message-shaped frame to the peer. Throughput: every user sends ${PER_USER} ` +
    `messages with ${WINDOW} unacknowledged at a time (${(PAIRS * 2 * PER_USER).toLocaleString('en')} messages), after a ` +
    `warm-up of 50 per user; the phase ends when every ack and every delivery has arrived. Latency: a fixed offered ` +
    `load of ${RATE.toLocaleString('en')} messages/s in total for ${LATENCY_MS / 1000} s, in sends every 5 ms; ack ` +
    `latency is send → the sender's \`ack\` (Gatehouse: after the commit, with the default \`synchronous=FULL\`), ` +
    `delivery latency send → the peer's \`message\` (both ends in the load generator, one clock).`,
  metrics: [
    { key: 'msgPerSec', label: 'messages/s (send → ack + delivery)', unit: '/s', better: 'higher', digits: 0 },
    { key: 'cpuUs', label: 'server CPU per message', unit: 'µs', better: 'lower', digits: 1, maxRatio: 1.5 },
    {
      key: 'ackP50',
      label: `ack latency p50 at ${RATE.toLocaleString('en')} msg/s`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
    },
    {
      key: 'ackP99',
      label: `ack latency p99 at ${RATE.toLocaleString('en')} msg/s`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
      maxRatio: 3,
    },
    {
      key: 'p50',
      label: `delivery latency p50 at ${RATE.toLocaleString('en')} msg/s`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
    },
    {
      key: 'p99',
      label: `delivery latency p99 at ${RATE.toLocaleString('en')} msg/s`,
      unit: 'ms',
      better: 'lower',
      digits: 2,
    },
  ],
  async run(ctx) {
    const ids: string[] = [];
    const pairs: [string, string][] = [];
    for (let i = 0; i < PAIRS; i++) {
      pairs.push([`da${i}`, `db${i}`]);
      ids.push(`da${i}`, `db${i}`);
    }
    const users = await principals(ctx, ids, 'im_web');
    await ctx.load.call('openUsers', { url: `${ctx.wsUrl}/ws`, users, deviceType: 'im_web' });
    await ctx.load.call('direct', { pairs, perUser: 50, window: WINDOW, tag: 'w' });
    const throughput = await measured(ctx, () =>
      ctx.load.call<{ messages: number; wallMs: number }>('direct', {
        pairs,
        perUser: PER_USER,
        window: WINDOW,
        tag: 'm',
      }),
    );
    const latency = await ctx.load.call<{
      sent: number;
      delivered: number;
      acked: number;
      errors: number;
      p50: number;
      p99: number;
      ackP50: number;
      ackP99: number;
    }>('directLatency', { pairs, rate: RATE, durationMs: LATENCY_MS, tag: 'l' });
    if (latency.delivered < latency.sent || latency.acked < latency.sent || latency.errors > 0)
      throw new Error(
        `latency phase: ${latency.delivered}/${latency.sent} delivered, ${latency.acked} acked, ${latency.errors} errors`,
      );
    await ctx.load.call('closeUsers');
    return {
      msgPerSec: (throughput.result.messages * 1000) / throughput.result.wallMs,
      cpuUs: throughput.cpuUs / throughput.result.messages,
      ackP50: latency.ackP50,
      ackP99: latency.ackP99,
      p50: latency.p50,
      p99: latency.p99,
    };
  },
};
