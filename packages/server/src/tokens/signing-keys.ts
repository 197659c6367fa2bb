import {
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'EdDSA' | 'ES256' | 'RS256';
const SUPPORTED: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512', 'EdDSA', 'ES256', 'RS256'];

/** One entry of the keys file. Secrets are base64url; asymmetric keys are PEM. */
export interface KeyFileEntry {
  kid: string;
  alg: JwtAlgorithm;
  secret?: string;
  privateKey?: string;
  publicKey?: string;
  /** Set by `gatehouse keys rotate --prepare`: verifies already, signs after the next rotate. */
  preparedAt?: string;
  /** Set by `gatehouse keys rotate` when the key stopped signing (ISO time); it still verifies. */
  retiredAt?: string;
  /** When no token signed by this retired key can still be valid: it may be removed after this. */
  removableAfter?: string;
}

/** `keys.json`: the signing key is `signingKid`; every listed key verifies (rotation). */
export interface KeysFile {
  signingKid: string;
  keys: KeyFileEntry[];
}

export interface SigningKey {
  kid: string;
  alg: JwtAlgorithm;
  /** The secret (HMAC) or private key; null for verify-only public keys. */
  signKey: KeyObject | null;
  verifyKey: KeyObject;
}

export interface KeyRing {
  signing: SigningKey;
  byKid: Map<string, SigningKey>;
}

/** The key type (and curve) each asymmetric algorithm needs. */
const KEY_TYPE: Record<'EdDSA' | 'ES256' | 'RS256', string> = {
  EdDSA: 'an Ed25519 key',
  ES256: 'an EC P-256 key',
  RS256: 'an RSA key (not RSA-PSS) of at least 2048 bits',
};
/** Shortest HMAC secret accepted, whatever the hash (256 bits). */
const MIN_SECRET_BYTES = 32;

function fitsAlgorithm(alg: 'EdDSA' | 'ES256' | 'RS256', key: KeyObject): boolean {
  if (alg === 'EdDSA') return key.asymmetricKeyType === 'ed25519';
  if (alg === 'ES256') return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
}

function parseKey(kid: string, field: 'privateKey' | 'publicKey', pem: string): KeyObject {
  try {
    return field === 'privateKey' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (err) {
    throw new TypeError(`key ${kid}: ${field} is not a readable PEM key (${(err as Error).message})`);
  }
}

/**
 * One keys-file entry as a key, checked the way a verifier needs it: an algorithm that is
 * supported, a key whose type and size fit it (so verification can never hit a key the
 * crypto call refuses), and, when both halves are given, halves of one pair.
 */
function toKey(entry: KeyFileEntry): SigningKey {
  if (!SUPPORTED.includes(entry.alg)) throw new TypeError(`key ${entry.kid}: algorithm ${entry.alg} is not supported`);
  if (entry.alg === 'HS256' || entry.alg === 'HS384' || entry.alg === 'HS512') {
    if (!entry.secret) throw new TypeError(`key ${entry.kid}: ${entry.alg} needs "secret" (base64url)`);
    const secret = createSecretKey(Buffer.from(entry.secret, 'base64url'));
    if ((secret.symmetricKeySize ?? 0) < MIN_SECRET_BYTES)
      throw new TypeError(`key ${entry.kid}: an ${entry.alg} secret must be at least ${MIN_SECRET_BYTES} bytes`);
    return { kid: entry.kid, alg: entry.alg, signKey: secret, verifyKey: secret };
  }
  const alg = entry.alg;
  if (!entry.privateKey && !entry.publicKey) throw new TypeError(`key ${entry.kid}: needs privateKey or publicKey`);
  const privateKey = entry.privateKey ? parseKey(entry.kid, 'privateKey', entry.privateKey) : null;
  const publicKey = entry.publicKey
    ? parseKey(entry.kid, 'publicKey', entry.publicKey)
    : createPublicKey(privateKey as KeyObject);
  for (const key of [privateKey, publicKey])
    if (key && !fitsAlgorithm(alg, key)) {
      const size = key.asymmetricKeyDetails?.modulusLength;
      const found = `${key.asymmetricKeyType ?? key.type}${size ? ` of ${size} bits` : ''}`;
      throw new TypeError(`key ${entry.kid}: ${alg} needs ${KEY_TYPE[alg]}, found ${found}`);
    }
  if (privateKey && entry.publicKey && !createPublicKey(privateKey).equals(publicKey))
    throw new TypeError(`key ${entry.kid}: publicKey is not the public half of privateKey`);
  return { kid: entry.kid, alg, signKey: privateKey, verifyKey: publicKey };
}

export function keyRingFrom(file: KeysFile, algorithms: readonly string[]): KeyRing {
  const byKid = new Map<string, SigningKey>();
  for (const entry of file.keys) {
    if (byKid.has(entry.kid)) throw new TypeError(`keys: kid "${entry.kid}" is listed twice`);
    if (!algorithms.includes(entry.alg))
      throw new TypeError(`key ${entry.kid}: ${entry.alg} is not in tokens.algorithms (${algorithms.join(', ')})`);
    byKid.set(entry.kid, toKey(entry));
  }
  const signing = byKid.get(file.signingKid);
  if (!signing) throw new TypeError(`keys: signingKid "${file.signingKid}" is not among the keys`);
  if (!signing.signKey) throw new TypeError(`keys: signing key "${file.signingKid}" has no private key`);
  return { signing, byKid };
}

/** A new key id: the date and a random suffix, e.g. `k20261202-3fa1c9`. */
export function newKid(now = new Date()): string {
  return `k${now.toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(3).toString('hex')}`;
}

/** A new key of the given algorithm: a 32-byte secret (HMAC) or a PEM key pair (RSA 2048 bits). */
export function generateKeyEntry(alg: JwtAlgorithm, kid = newKid()): KeyFileEntry {
  if (alg.startsWith('HS')) return { kid, alg, secret: randomBytes(alg === 'HS256' ? 32 : 64).toString('base64url') };
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const pair: { privateKey: string; publicKey: string } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding })
        : generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding });
  return { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** A fresh keys file with one random HS256 secret. */
export function generateKeysFile(): KeysFile {
  const entry = generateKeyEntry('HS256');
  return { signingKid: entry.kid, keys: [entry] };
}

/** Reads the keys file, creating it (mode 0600) with a generated secret if it does not exist. */
export function loadOrCreateKeysFile(path: string): { file: KeysFile; created: boolean } {
  if (existsSync(path)) return { file: JSON.parse(readFileSync(path, 'utf8')) as KeysFile, created: false };
  mkdirSync(dirname(path), { recursive: true });
  const file = generateKeysFile();
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { file, created: true };
}
