// An echo bot on the Gatehouse SDK (Node 20+): it logs in as an IM user through the open API
// with an app key — what an app's backend would do — and answers every message it receives.
//
//   GATEHOUSE_URL=http://127.0.0.1:8080 GATEHOUSE_APP_KEY=gk_… BOT_ID=echo-bot node examples/node-bot.mjs
import { GatehouseClient } from '@gatehouse/client';

const base = process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:8080';
const appKey = process.env.GATEHOUSE_APP_KEY;
const botId = process.env.BOT_ID ?? 'echo-bot';
if (!appKey) {
  console.error('set GATEHOUSE_APP_KEY (an app key: npx gatehouse app-key create --name bot)');
  process.exit(2);
}

/** The app backend's part: a fresh token for the bot's user (called again when it expires). */
async function getToken() {
  const res = await fetch(`${base}/openapi/v1/user/login`, {
    method: 'POST',
    headers: { 'x-app-key': appKey, 'content-type': 'application/json' },
    body: JSON.stringify({ id: botId, nickname: 'Echo Bot', device: 'im_pc_win' }),
  });
  if (!res.ok) throw new Error(`open API login: HTTP ${res.status}`);
  return (await res.json()).data.token;
}

const client = new GatehouseClient({ url: `${base.replace(/^http/, 'ws')}/ws`, getToken, deviceType: 'im_pc_win' });
client.on('status', (status) => console.log(`status ${status}`));
client.on('reconnecting', ({ attempt, delay, code }) =>
  console.log(`reconnecting #${attempt} in ${delay} ms (${code})`),
);
client.on('error', (err) => console.error(`error ${err.code}: ${err.message}`));
client.on('message', async (message) => {
  if (message.from.id === botId) return;
  console.log(`< ${message.from.id}: ${message.text}`);
  const ack = await client.send(message.conversation_id, `echo: ${message.text}`);
  console.log(`> seq ${ack.seq}`);
});

await client.connect();
console.log(`bot ${botId} ready`);
for (const signal of ['SIGINT', 'SIGTERM'])
  process.on(signal, () => {
    client.close();
    process.exit(0);
  });
