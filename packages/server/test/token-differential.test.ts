import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { jwtVerify, SignJWT } from 'jose';
import { ManualClock } from '../src/clock.js';
import { type JwtAlgorithm, type KeyFileEntry, type KeyRing, keyRingFrom } from '../src/tokens/signing-keys.js';
import { isCanonicalBase64url, TokenService } from '../src/tokens/token-service.js';
import { startServer } from './helpers/test-server.js';

/**
 * TokenService's own verifier (node:crypto, the handshake's hot path) against jose's
 * jwtVerify, on generated tokens of every supported algorithm. The one deliberate difference:
 * Gatehouse refuses segments that are not canonical base64url (jose reads them), so that one
 * signature has one spelling.
 */

const ALGORITHMS: JwtAlgorithm[] = ['HS256', 'HS384', 'HS512', 'EdDSA', 'ES256', 'RS256'];
const pem = (key: KeyObject, type: 'pkcs8' | 'spki') => key.export({ type, format: 'pem' }) as string;

interface TestKey {
  alg: JwtAlgorithm;
  kid: string;
  sign: KeyObject | Uint8Array;
  verify: KeyObject | Uint8Array;
  entry: KeyFileEntry;
}

function makeKey(alg: JwtAlgorithm, kid = alg.toLowerCase()): TestKey {
  if (alg.startsWith('HS')) {
    const secret = randomBytes(Number(alg.slice(2)) / 8);
    return { alg, kid, sign: secret, verify: secret, entry: { kid, alg, secret: secret.toString('base64url') } };
  }
  const pair =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    alg,
    kid,
    sign: pair.privateKey,
    verify: pair.publicKey,
    entry: { kid, alg, privateKey: pem(pair.privateKey, 'pkcs8') },
  };
}

const keys = ALGORITHMS.map((alg) => makeKey(alg));
// Keys the server does not know: same algorithms, other material.
const strangers = ALGORITHMS.map((alg) => makeKey(alg));
const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
const options = { issuer: 'gatehouse', audience: 'gatehouse', algorithms: ALGORITHMS, clockToleranceMs: 5000 };
const ring = keyRingFrom({ signingKid: 'hs256', keys: keys.map((k) => k.entry) }, ALGORITHMS);
const now = Math.floor(clock.now() / 1000);

async function joseAccepts(token: string): Promise<boolean> {
  try {
    await jwtVerify(
      token,
      (header) => {
        // The key-selection rule under test: the kid's key, or without a kid the one key of the algorithm.
        const candidates =
          header.kid === undefined
            ? keys.filter((k) => k.alg === header.alg)
            : keys.filter((k) => k.kid === header.kid);
        const key = candidates.length === 1 ? candidates[0] : undefined;
        if (!key || key.alg !== header.alg) throw new Error('no key');
        return key.verify;
      },
      {
        algorithms: ALGORITHMS,
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: options.clockToleranceMs / 1000,
        currentDate: new Date(clock.now()),
        requiredClaims: ['sub', 'iat', 'exp'],
      },
    );
    return true;
  } catch {
    return false;
  }
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Claims Gatehouse needs (kind, sid) always present; the ones both verifiers check vary. */
const claimsArb = fc.record({
  sub: fc.stringMatching(/^[a-z0-9-]{1,24}$/),
  kind: fc.constantFrom('user', 'agent', 'customer'),
  sid: fc.uuid(),
  jti: fc.uuid(),
  iat: fc.integer({ min: now - 100_000, max: now }),
  // Around now on purpose: expired, within the 5 s tolerance, and valid.
  exp: fc.oneof(
    { weight: 2, arbitrary: fc.integer({ min: now + 21, max: now + 100_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: now - 20, max: now + 20 }) },
    { weight: 1, arbitrary: fc.integer({ min: now - 100_000, max: now + 100_000 }) },
  ),
  nbf: fc.option(fc.integer({ min: now - 20, max: now + 20 }), { nil: undefined, freq: 3 }),
  iss: fc.constantFrom('gatehouse', 'gatehouse', 'gatehouse', 'gatehouse', 'gatehouse', 'other'),
  aud: fc.constantFrom<string | string[]>('gatehouse', 'gatehouse', 'gatehouse', ['x', 'gatehouse'], 'other', [
    'x',
    'y',
  ]),
});

/** A header that names one key (or none), with the algorithm the key has (or another). */
const headerArb = fc.record({
  key: fc.integer({ min: 0, max: keys.length - 1 }),
  kidMode: fc.constantFrom('own', 'own', 'own', 'own', 'none', 'unknown', 'other'),
  algMode: fc.constantFrom('own', 'own', 'own', 'own', 'other'),
  otherAlg: fc.constantFrom(...ALGORITHMS),
  signer: fc.constantFrom('own', 'own', 'own', 'stranger'),
});

type HeaderChoice = typeof headerArb extends fc.Arbitrary<infer T> ? T : never;

type Mutation =
  | { kind: 'none' }
  | { kind: 'replace'; part: 0 | 1 | 2; at: number; char: number }
  | { kind: 'last-bits'; part: 0 | 1 | 2; bits: number }
  | { kind: 'pad'; part: 0 | 1 | 2 }
  | { kind: 'truncate'; drop: number }
  | { kind: 'swap-signature' };

const part = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('replace' as const), part, at: fc.nat(), char: fc.nat(63) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('last-bits' as const), part, bits: fc.integer({ min: 1, max: 15 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pad' as const), part }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), drop: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'swap-signature' as const }) },
);

async function build(claims: Record<string, unknown>, h: HeaderChoice): Promise<string> {
  const key = keys[h.key] as TestKey;
  const alg = h.algMode === 'own' ? key.alg : h.otherAlg;
  const kid =
    h.kidMode === 'own'
      ? key.kid
      : h.kidMode === 'unknown'
        ? 'kid-nobody-has'
        : h.kidMode === 'other'
          ? (keys[(h.key + 1) % keys.length] as TestKey).kid
          : undefined;
  // The signing key must fit the header's algorithm for jose to sign at all.
  const signer = (h.signer === 'own' ? keys : strangers).find((k) => k.alg === alg) as TestKey;
  const payload = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }).sign(signer.sign);
}

function mutate(token: string, m: Mutation, other: string): string {
  const parts = token.split('.') as [string, string, string];
  switch (m.kind) {
    case 'none':
      return token;
    case 'replace': {
      const seg = parts[m.part];
      const at = m.at % seg.length;
      parts[m.part] = seg.slice(0, at) + BASE64URL[m.char] + seg.slice(at + 1);
      return parts.join('.');
    }
    case 'last-bits': {
      const seg = parts[m.part];
      const last = BASE64URL.indexOf(seg.at(-1) as string);
      parts[m.part] = seg.slice(0, -1) + BASE64URL[(last ^ m.bits) & 63];
      return parts.join('.');
    }
    case 'pad':
      parts[m.part] = `${parts[m.part]}=`;
      return parts.join('.');
    case 'truncate':
      return token.slice(0, Math.max(0, token.length - m.drop));
    case 'swap-signature':
      return `${parts[0]}.${parts[1]}.${other.split('.')[2]}`;
  }
}

/** Canonical base64url, by an independent rule: only the alphabet, and decoding then encoding gives it back. */
const canonical = (token: string): boolean => {
  const parts = token.split('.');
  return (
    parts.length === 3 &&
    parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p) && Buffer.from(p, 'base64url').toString('base64url') === p)
  );
};

describe('TokenService against jose on generated tokens of all six algorithms (property-based)', () => {
  const service = new TokenService(ring, options, clock);

  it('accepts every valid token of every algorithm, as jose does', async () => {
    await fc.assert(
      fc.asyncProperty(claimsArb, fc.integer({ min: 0, max: keys.length - 1 }), async (claims, k) => {
        const valid = { ...claims, iss: 'gatehouse', aud: 'gatehouse', exp: now + 3600, nbf: undefined };
        const token = await build(valid, { key: k, kidMode: 'own', algMode: 'own', otherAlg: 'HS256', signer: 'own' });
        assert.equal(await joseAccepts(token), true);
        const ours = service.verifyAccessToken(token);
        assert.equal(ours.ok, true, JSON.stringify(ours));
      }),
      { numRuns: 120 },
    );
  });

  it('agrees with jose on generated headers, claims and tampering; refuses what is not canonical base64url', async () => {
    const seen = { accepted: 0, refused: 0, nonCanonical: 0 };
    await fc.assert(
      fc.asyncProperty(claimsArb, headerArb, mutationArb, async (claims, header, mutation) => {
        const other = await build({ ...claims, sub: `${claims.sub}x` }, header);
        const token = mutate(await build(claims, header), mutation, other);
        const ours = service.verifyAccessToken(token);
        if (!canonical(token)) {
          seen.nonCanonical++;
          assert.equal(ours.ok, false, `accepted a non-canonical token ${token}`);
          return;
        }
        const theirs = await joseAccepts(token);
        if (ours.ok) seen.accepted++;
        else seen.refused++;
        assert.equal(
          ours.ok,
          theirs,
          `gatehouse ${ours.ok} (${ours.ok ? '' : ours.message}), jose ${theirs}: ${token}`,
        );
      }),
      { numRuns: 600 },
    );
    // The comparison is not vacuous: both outcomes, and non-canonical inputs, were generated.
    assert.ok(seen.accepted > 20 && seen.refused > 20 && seen.nonCanonical > 10, JSON.stringify(seen));
  });

  it('never throws, whatever the string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((p) => p.join('.')),
          fc
            .tuple(fc.json(), fc.json(), fc.string())
            .map((p) => p.map((s) => Buffer.from(s).toString('base64url')).join('.')),
        ),
        (token) => {
          const result = service.verifyAccessToken(token);
          assert.equal(result.ok, false);
          assert.ok(result.code === 'TOKEN_INVALID' || result.code === 'TOKEN_EXPIRED');
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('isCanonicalBase64url', () => {
  it('agrees with decode-then-encode on generated strings', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_=+/-]{0,12}$/), (segment) => {
        const expected =
          /^[A-Za-z0-9_-]+$/.test(segment) && Buffer.from(segment, 'base64url').toString('base64url') === segment;
        assert.equal(isCanonicalBase64url(segment), expected, segment);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('verification failures are refusals, never exceptions', () => {
  it('maps a throw inside the crypto call to TOKEN_INVALID (a key the checks at load would refuse)', async () => {
    // Built by hand, past keyRingFrom: an Ed25519 key filed under RS256 makes crypto.verify throw.
    const ed = generateKeyPairSync('ed25519');
    const broken: KeyRing = {
      signing: { kid: 'bad', alg: 'RS256', signKey: null, verifyKey: ed.publicKey },
      byKid: new Map([['bad', { kid: 'bad', alg: 'RS256', signKey: null, verifyKey: ed.publicKey }]]),
    };
    const service = new TokenService(broken, { ...options, algorithms: ['RS256'] }, clock);
    const rsa = makeKey('RS256', 'bad');
    const token = await new SignJWT({
      sub: 'u',
      kind: 'user',
      sid: 's',
      iat: now,
      exp: now + 60,
      iss: 'gatehouse',
      aud: 'gatehouse',
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'bad' })
      .sign(rsa.sign);
    const result = service.verifyAccessToken(token);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 'TOKEN_INVALID');
  });
});

describe('signing keys are checked when loaded', () => {
  const load = (entry: KeyFileEntry) => keyRingFrom({ signingKid: entry.kid, keys: [entry] }, ALGORITHMS);
  const pair = (kind: 'ed25519' | 'ec256' | 'ec384' | 'rsa1024' | 'rsa2048' | 'rsapss') => {
    const p =
      kind === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : kind === 'ec256'
          ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
          : kind === 'ec384'
            ? generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
            : kind === 'rsapss'
              ? generateKeyPairSync('rsa-pss', { modulusLength: 2048 })
              : generateKeyPairSync('rsa', { modulusLength: kind === 'rsa1024' ? 1024 : 2048 });
    return { privateKey: pem(p.privateKey, 'pkcs8'), publicKey: pem(p.publicKey, 'spki') };
  };

  it('refuses an RSA key under 2048 bits, with a clear error', () => {
    assert.throws(
      () => load({ kid: 'r', alg: 'RS256', privateKey: pair('rsa1024').privateKey }),
      /RS256 needs an RSA key .*2048 bits, found rsa of 1024 bits/,
    );
    assert.throws(() => load({ kid: 'r', alg: 'RS256', publicKey: pair('rsa1024').publicKey }), /2048 bits/);
    assert.doesNotThrow(() => load({ kid: 'r', alg: 'RS256', privateKey: pair('rsa2048').privateKey }));
  });

  it('refuses a key whose type does not match its algorithm', () => {
    for (const [alg, wrong] of [
      ['RS256', 'ed25519'],
      ['RS256', 'ec256'],
      ['RS256', 'rsapss'],
      ['ES256', 'rsa2048'],
      ['ES256', 'ec384'],
      ['ES256', 'ed25519'],
      ['EdDSA', 'ec256'],
      ['EdDSA', 'rsa2048'],
    ] as const) {
      const keys = pair(wrong);
      assert.throws(
        () => load({ kid: 'k', alg, privateKey: keys.privateKey }),
        new RegExp(`key k: ${alg} needs`),
        `${alg} with ${wrong}`,
      );
      assert.throws(
        () => load({ kid: 'k', alg, publicKey: keys.publicKey }),
        new RegExp(`key k: ${alg} needs`),
        `${alg} with ${wrong} (public)`,
      );
    }
  });

  it('refuses halves of two different pairs, unreadable PEM, and short or missing HMAC secrets', () => {
    assert.throws(
      () =>
        load({ kid: 'k', alg: 'EdDSA', privateKey: pair('ed25519').privateKey, publicKey: pair('ed25519').publicKey }),
      /publicKey is not the public half of privateKey/,
    );
    assert.throws(
      () => load({ kid: 'k', alg: 'ES256', publicKey: 'not a pem' }),
      /key k: publicKey is not a readable PEM key/,
    );
    assert.throws(
      () => load({ kid: 'k', alg: 'HS512', secret: randomBytes(16).toString('base64url') }),
      /at least 32 bytes/,
    );
    assert.throws(() => load({ kid: 'k', alg: 'HS384', privateKey: pair('ed25519').privateKey }), /needs "secret"/);
  });
});

describe('a server with a bad key in its keys file', () => {
  it('does not start, and says which key and why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-badkey-'));
    try {
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const keysFile = join(dir, 'keys.json');
      writeFileSync(
        keysFile,
        JSON.stringify({
          signingKid: 'weak',
          keys: [{ kid: 'weak', alg: 'RS256', privateKey: pem(weak.privateKey, 'pkcs8') }],
        }),
      );
      await assert.rejects(
        startServer({ tokens: { algorithms: ['RS256'], keysFile } }, { dataDir: join(dir, 'data') }),
        /key weak: RS256 needs an RSA key .*2048 bits/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
