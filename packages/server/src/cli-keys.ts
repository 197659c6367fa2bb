import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type CliCommand, configFrom, type Flags, required, UsageError } from './cli-command.js';
import { type GatehouseConfig, ms } from './config.js';
import { parseDuration } from './duration.js';
import { generateKeyEntry, type JwtAlgorithm, type KeysFile, newKid } from './tokens/signing-keys.js';

const ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'EdDSA', 'ES256', 'RS256'];

function algorithm(flags: Flags, fallback: JwtAlgorithm): JwtAlgorithm {
  const alg = typeof flags.alg === 'string' ? flags.alg : fallback;
  if (!ALGORITHMS.includes(alg as JwtAlgorithm)) throw new UsageError(`--alg must be one of ${ALGORITHMS.join(', ')}`);
  return alg as JwtAlgorithm;
}

/** Writes the keys file owner-only (0600) in one step: a half-written keys file must never be read. */
function writeKeysFile(file: string, keys: KeysFile, options: { exclusive?: boolean } = {}): void {
  const text = `${JSON.stringify(keys, null, 2)}\n`;
  if (options.exclusive) {
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
}

/** The longest time a token signed now can stay valid: the longest access-token lifetime plus the leeway. */
function longestTokenLifetimeMs(config: GatehouseConfig, flags: Flags): number {
  if (typeof flags['max-token-lifetime'] === 'string')
    return parseDuration(flags['max-token-lifetime'], '--max-token-lifetime');
  const ttl = Math.max(
    ms(config, 'tokens.ttl.user'),
    ms(config, 'tokens.ttl.agent'),
    ms(config, 'tokens.ttl.customer'),
  );
  return ttl + ms(config, 'tokens.clockTolerance');
}

function uniqueKid(keys: KeysFile, now: Date): string {
  let kid = newKid(now);
  while (keys.keys.some((k) => k.kid === kid)) kid = newKid(now);
  return kid;
}

async function generate(flags: Flags): Promise<number> {
  const out = resolve(required(flags, 'out'));
  if (existsSync(out)) throw new UsageError(`${out} exists; use "keys rotate --keys-file ${out}" to add a key`);
  const entry = generateKeyEntry(algorithm(flags, 'HS256'));
  writeKeysFile(out, { signingKid: entry.kid, keys: [entry] }, { exclusive: true });
  console.log(`wrote ${out} (mode 0600): signing key ${entry.kid} (${entry.alg})`);
  console.log(`use it on every node: GATEHOUSE_TOKENS_KEYS_FILE=${out}`);
  if (entry.alg !== 'HS256') console.log(`tokens.algorithms must include ${entry.alg}`);
  return 0;
}

async function rotate(flags: Flags): Promise<number> {
  const config = configFrom(flags);
  const file = resolve(
    typeof flags['keys-file'] === 'string'
      ? flags['keys-file']
      : config.tokens.keysFile || join(config.dataDir, 'keys.json'),
  );
  if (!existsSync(file)) throw new UsageError(`${file} does not exist; create it with "keys generate --out ${file}"`);
  const keys = JSON.parse(readFileSync(file, 'utf8')) as KeysFile;
  const current = keys.keys.find((k) => k.kid === keys.signingKid);
  if (!current) throw new Error(`${file}: signingKid "${keys.signingKid}" is not among the keys`);
  const now = new Date();
  const prepared = keys.keys.find((k) => k.kid !== keys.signingKid && !k.retiredAt && k.preparedAt);
  if (flags.prepare) {
    if (prepared) throw new UsageError(`${prepared.kid} is already prepared; run "keys rotate" to make it sign`);
    const entry = generateKeyEntry(algorithm(flags, current.alg), uniqueKid(keys, now));
    entry.preparedAt = now.toISOString();
    keys.keys.push(entry);
    writeKeysFile(file, keys);
    console.log(`${file}: added ${entry.kid} (${entry.alg}) for verification only; ${current.kid} still signs`);
    console.log('copy the file to every node and restart them; then run "keys rotate" to make it sign');
    return 0;
  }
  const entry = prepared ?? generateKeyEntry(algorithm(flags, current.alg), uniqueKid(keys, now));
  delete entry.preparedAt;
  current.retiredAt = now.toISOString();
  current.removableAfter = new Date(now.getTime() + longestTokenLifetimeMs(config, flags)).toISOString();
  if (!prepared) keys.keys.push(entry);
  keys.signingKid = entry.kid;
  writeKeysFile(file, keys);
  console.log(`${file}: new signing key ${entry.kid} (${entry.alg}); ${current.kid} now only verifies`);
  console.log(`${current.kid} may be removed after ${current.removableAfter} (no token it signed is valid then)`);
  for (const old of keys.keys)
    if (old.removableAfter && Date.parse(old.removableAfter) <= now.getTime())
      console.log(`${old.kid} is past ${old.removableAfter}: it can be removed from the file now`);
  console.log('copy the file to every node and restart them one by one');
  return 0;
}

export const keysCommand: CliCommand = {
  name: 'keys',
  usage: [
    'keys generate [--alg HS256|EdDSA|ES256|RS256] --out FILE',
    'keys rotate [--keys-file FILE] [--alg A] [--prepare] [--max-token-lifetime 30d]',
  ],
  options: {
    alg: { type: 'string' },
    out: { type: 'string' },
    'keys-file': { type: 'string' },
    'max-token-lifetime': { type: 'string' },
    prepare: { type: 'boolean' },
  },
  run(args, flags) {
    if (args[0] === 'generate') return generate(flags);
    if (args[0] === 'rotate') return rotate(flags);
    throw new UsageError('keys generate|rotate');
  },
};
