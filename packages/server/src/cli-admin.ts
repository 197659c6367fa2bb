import { decodeJwt, decodeProtectedHeader } from 'jose';
import { Gatehouse } from './app.js';
import { type CliCommand, configFrom, type Flags, required, UsageError } from './cli-command.js';
import { parseDuration } from './duration.js';

/** Opens the data folder's services without listening (for the admin commands). */
async function offline<T>(flags: Flags, run: (gatehouse: Gatehouse) => Promise<T>): Promise<T> {
  const config = configFrom(flags, { overrides: { log: { level: 'warn' } } });
  const gatehouse = await Gatehouse.create({ config });
  try {
    return await run(gatehouse);
  } finally {
    await gatehouse.close();
  }
}

export const userCommand: CliCommand = {
  name: 'user',
  usage: ['user add --kind agent|user --username U --password P [--name N] [--data-dir DIR]'],
  options: {
    kind: { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    name: { type: 'string' },
  },
  async run(args, flags) {
    if (args[0] !== 'add') throw new UsageError('user add …');
    const kind = required(flags, 'kind');
    if (kind !== 'agent' && kind !== 'user') throw new UsageError('--kind must be agent or user');
    const created = await offline(flags, (g) =>
      g.services.auth.createAccount({
        kind,
        username: required(flags, 'username'),
        password: required(flags, 'password'),
        ...(typeof flags.name === 'string' ? { name: flags.name } : {}),
      }),
    );
    console.log(`created ${created.kind} ${created.id} (${created.name})`);
    return 0;
  },
};

export const appKeyCommand: CliCommand = {
  name: 'app-key',
  usage: ['app-key create --name N [--data-dir DIR]'],
  options: { name: { type: 'string' } },
  async run(args, flags) {
    if (args[0] !== 'create') throw new UsageError('app-key create --name N');
    const key = await offline(flags, (g) => g.services.auth.createAppKey(required(flags, 'name')));
    console.log(`created app key ${key.id} "${key.name}" (shown once):`);
    console.log(key.key);
    return 0;
  },
};

function decode(token: string): void {
  const raw = token.replace(/^bearer\s+/i, '');
  const header = decodeProtectedHeader(raw);
  const payload = decodeJwt(raw);
  const now = Math.floor(Date.now() / 1000);
  console.log(JSON.stringify({ header, payload }, null, 2));
  if (typeof payload.exp === 'number')
    console.log(payload.exp > now ? `expires in ${payload.exp - now} s` : `expired ${now - payload.exp} s ago`);
  console.log('(decoded only: the signature was not checked)');
}

export const tokenCommand: CliCommand = {
  name: 'token',
  usage: [
    'token issue --sub ID --kind user|agent|customer [--ttl 1h] [--name N] [--device-type T] [--device-id D] [--data-dir DIR]',
    'token decode TOKEN',
  ],
  options: {
    sub: { type: 'string' },
    kind: { type: 'string' },
    ttl: { type: 'string' },
    name: { type: 'string' },
    'device-type': { type: 'string' },
    'device-id': { type: 'string' },
    token: { type: 'string' },
  },
  async run(args, flags) {
    if (args[0] === 'decode') {
      const token = args[1] ?? flags.token;
      if (typeof token !== 'string') throw new UsageError('token decode TOKEN');
      decode(token);
      return 0;
    }
    if (args[0] !== 'issue') throw new UsageError('token issue|decode');
    const kind = required(flags, 'kind');
    if (!['user', 'agent', 'customer'].includes(kind)) throw new UsageError('--kind must be user, agent or customer');
    const sub = required(flags, 'sub');
    const name = typeof flags.name === 'string' ? flags.name : sub;
    const issued = await offline(flags, async (g) => {
      const existing = await g.services.store.getPrincipal(sub);
      const principal = existing ?? { id: sub, kind: kind as 'user', name };
      if (existing && existing.kind !== kind) throw new UsageError(`${sub} is a ${existing.kind}, not a ${kind}`);
      return g.services.auth.startSession(
        principal,
        {
          deviceType: typeof flags['device-type'] === 'string' ? flags['device-type'] : null,
          deviceId: typeof flags['device-id'] === 'string' ? flags['device-id'] : null,
        },
        typeof flags.ttl === 'string' ? parseDuration(flags.ttl, '--ttl') : undefined,
      );
    });
    console.error(`expires at ${new Date(issued.expiresAt).toISOString()}`);
    console.log(issued.token);
    return 0;
  },
};
