import { MESSAGE_TEXT, median } from '../common.js';
import { principals } from './setup.js';
import { measured, type Scenario } from './types.js';

const BACKLOG = 10_000;
const RECONNECTS = 9;

interface ReplayResult {
  count: number;
  received: number;
  /** The client's `open` → `offline_messages_complete`. */
  ms: number;
  /** `new WebSocket(…)` → `offline_messages_complete` (includes the handshake). */
  fromConnectMs: number;
}

export const replay: Scenario = {
  name: 'replay',
  title: 'Offline replay',
  replayLimit: BACKLOG,
  describe: () =>
    `A device with a backlog of ${BACKLOG.toLocaleString('en')} messages connects; the time is from \`new WebSocket(…)\` ` +
    '(connect) to `offline_messages_complete`, and from the client’s `open` to it. Gatehouse runs with ' +
    '`messages.replayLimit: 10000`; the backlog is ' +
    `${BACKLOG.toLocaleString('en')} direct messages (64-byte text) another user sent while the device was offline; the ` +
    'device never acks, so each reconnect replays the whole backlog. The baseline sends ' +
    `${BACKLOG.toLocaleString('en')} pre-built \`offline_message\` frames of the same shape and size on open, then ` +
    `the complete frame. One warm-up reconnect, then ${RECONNECTS} measured (median per run; CPU over all ${RECONNECTS}). ` +
    'The rate is computed from connect → complete, which includes the handshake: Gatehouse sends the 101 response ' +
    'together with the first frames, so the client’s `open` event comes late and open → complete (shown too) ' +
    'flatters it.',
  metrics: [
    {
      key: 'ms',
      label: `connect → offline_messages_complete (${BACKLOG.toLocaleString('en')} messages)`,
      unit: 'ms',
      better: 'lower',
      digits: 1,
    },
    { key: 'openMs', label: 'open → offline_messages_complete', unit: 'ms', better: 'lower', digits: 1 },
    {
      key: 'msgPerSec',
      label: 'replayed messages/s (from connect)',
      unit: '/s',
      better: 'higher',
      digits: 0,
      min: 100_000,
    },
    { key: 'cpuUs', label: 'server CPU per replayed message', unit: 'µs', better: 'lower', digits: 2 },
  ],
  async run(ctx) {
    const [sender, device] = await principals(ctx, ['ra', 'rb'], 'im_app_ios');
    if (!sender || !device) throw new Error('no principals');
    if (ctx.side === 'gatehouse') {
      await ctx.load.call('openUsers', { url: `${ctx.wsUrl}/ws`, users: [sender], deviceType: 'im_web' });
      await ctx.load.call('sendMany', { from: 'ra', to: 'rb', count: BACKLOG, window: 64 });
      await ctx.load.call('closeUsers');
    } else {
      await ctx.server.call('replaySetup', { sub: 'rb', from: 'ra', count: BACKLOG, text: MESSAGE_TEXT });
    }
    const args = { url: `${ctx.wsUrl}/ws`, token: device.token, deviceType: 'im_app_ios', expected: BACKLOG };
    await ctx.load.call('replay', args);
    const times: number[] = [];
    const openTimes: number[] = [];
    const { cpuUs } = await measured(ctx, async () => {
      for (let i = 0; i < RECONNECTS; i++) {
        const result = await ctx.load.call<ReplayResult>('replay', args);
        if (result.count !== BACKLOG || result.received !== BACKLOG)
          throw new Error(`replay: count ${result.count}, received ${result.received}, expected ${BACKLOG}`);
        times.push(result.fromConnectMs);
        openTimes.push(result.ms);
      }
    });
    const ms = median(times);
    return { ms, openMs: median(openTimes), msgPerSec: (BACKLOG * 1000) / ms, cpuUs: cpuUs / (BACKLOG * RECONNECTS) };
  },
};
