import { group, principals } from './setup.js';
import { measured, type Scenario } from './types.js';

const MEMBERS = 1_000;
const BURSTS = 50;
const BURST_SIZE = 10;

export const fanout: Scenario = {
  name: 'fanout',
  title: 'Group fan-out',
  describe: () =>
    `One group of ${MEMBERS.toLocaleString('en')} members, all online (one socket each). Gatehouse: the members are ` +
    'users created through the open API with an app key, the group is made with `POST /api/v1/conversations` ' +
    '(`X-Admin-Key`). One member sends bursts of ' +
    `${BURST_SIZE} \`message\` frames (64-byte text) to the group, written to its socket at once (one TCP write); a ` +
    `burst ends when every other member has all of it (${MEMBERS - 1} deliveries per message). ${BURSTS} bursts are ` +
    'measured after 3 warm-up bursts; then another ' +
    `${BURSTS} bursts whose frames the sender writes one by one (${BURST_SIZE} TCP writes, so the server may read ` +
    'and store a burst in several turns and write each socket several times) are reported beside them. Gatehouse stores ' +
    'each message, acks it and fans it out (frame built once, writes coalesced per socket); the baseline parses the ' +
    `frame, acks it and loops \`ws.send\` of one pre-serialized buffer over the other ${MEMBERS - 1} sockets. CPU per ` +
    'delivery is all the server CPU of the phase (parse, store, ack and fan-out) ÷ deliveries.',
  metrics: [
    { key: 'deliveriesPerSec', label: 'deliveries/s', unit: '/s', better: 'higher', digits: 0 },
    { key: 'cpuUs', label: 'server CPU per delivery', unit: 'µs', better: 'lower', digits: 2, max: 0.5 },
    {
      key: 'spreadDeliveriesPerSec',
      label: 'deliveries/s, burst frames written one by one',
      unit: '/s',
      better: 'higher',
      digits: 0,
    },
    {
      key: 'spreadCpuUs',
      label: 'server CPU per delivery, burst frames written one by one',
      unit: 'µs',
      better: 'lower',
      digits: 2,
    },
  ],
  async run(ctx) {
    const ids = Array.from({ length: MEMBERS }, (_, i) => `fm${i}`);
    const users = await principals(ctx, ids, 'im_web');
    const conversationId = await group(ctx, ids);
    await ctx.load.call('openUsers', { url: `${ctx.wsUrl}/ws`, users, deviceType: 'im_web' });
    const args = { sender: 'fm0', conversationId, burstSize: BURST_SIZE };
    await ctx.load.call('fanout', { ...args, bursts: 3, oneWrite: true, tag: 'w' });
    const burst = await measured(ctx, () =>
      ctx.load.call<{ deliveries: number; wallMs: number }>('fanout', {
        ...args,
        bursts: BURSTS,
        oneWrite: true,
        tag: 'm',
      }),
    );
    const spread = await measured(ctx, () =>
      ctx.load.call<{ deliveries: number; wallMs: number }>('fanout', {
        ...args,
        bursts: BURSTS,
        oneWrite: false,
        tag: 's',
      }),
    );
    await ctx.load.call('closeUsers');
    return {
      deliveriesPerSec: (burst.result.deliveries * 1000) / burst.result.wallMs,
      cpuUs: burst.cpuUs / burst.result.deliveries,
      spreadDeliveriesPerSec: (spread.result.deliveries * 1000) / spread.result.wallMs,
      spreadCpuUs: spread.cpuUs / spread.result.deliveries,
    };
  },
};
