import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CompactSign, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { ManualClock } from '../src/clock.js';
import { type KeysFile, keyRingFrom } from '../src/tokens/signing-keys.js';
import { TokenService } from '../src/tokens/token-service.js';
import {
  closeClient,
  hmacToken,
  passwordUser,
  serverSigningKey,
  signToken,
  tryConnect,
  unsignedToken,
  userClaims,
  validate,
  withPayload,
} from './helpers/auth-fixtures.js';
import { agentLogin, api, startServer, type TestServer } from './helpers/test-server.js';

const now = (server: TestServer) => Math.floor(server.clock.now() / 1000);

/** Asserts the token is refused by validate-token (200, valid:false) and by the /ws handshake (401). */
async function assertRefused(server: TestServer, token: string, code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED') {
  const res = await validate(server, token);
  assert.equal(res.status, 200);
  assert.equal(res.body.valid, false, `validate-token accepted ${token.slice(0, 40)}…`);
  assert.equal(res.body.error, code);
  assert.equal(typeof res.body.message, 'string');
  const outcome = await tryConnect(`${server.wsUrl}/ws?token=${encodeURIComponent(token)}`);
  if (outcome.kind === 'connected') {
    await closeClient(outcome.client);
    assert.fail('the /ws handshake accepted the token');
  }
  assert.equal(outcome.status, 401);
  assert.equal(outcome.code, code);
  assert.deepEqual(Object.keys(outcome.body).sort(), ['code', 'err_msg', 'error']);
  assert.equal(outcome.body.error, code);
}

/** Asserts the token is accepted by validate-token and by the /ws handshake. */
async function assertAccepted(server: TestServer, token: string) {
  const res = await validate(server, token);
  assert.equal(res.body.valid, true, `validate-token refused: ${JSON.stringify(res.body)}`);
  const outcome = await tryConnect(`${server.wsUrl}/ws?token=${encodeURIComponent(token)}`);
  assert.equal(
    outcome.kind,
    'connected',
    `handshake refused: ${JSON.stringify(outcome.kind === 'rejected' && outcome)}`,
  );
  if (outcome.kind === 'connected') await closeClient(outcome.client);
}

describe('access token verification on validate-token and the /ws handshake', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('accepts a token signed with the server key and the right claims (the control case)', async () => {
    await assertAccepted(server, await signToken(server, userClaims(server)));
  });

  it('accepts a token whose aud is an array that contains the audience', async () => {
    await assertAccepted(server, await signToken(server, userClaims(server, { aud: ['other', 'gatehouse'] })));
  });

  it('refuses an unsigned alg:none token', async () => {
    await assertRefused(server, unsignedToken(userClaims(server)), 'TOKEN_INVALID');
  });

  it('refuses an alg:none token that keeps a real signature', async () => {
    const real = await signToken(server, userClaims(server));
    const none = unsignedToken(userClaims(server));
    await assertRefused(server, none + real.split('.')[2], 'TOKEN_INVALID');
  });

  it('refuses a token signed with another key', async () => {
    const otherKey = randomBytes(32);
    await assertRefused(server, await signToken(server, userClaims(server), { key: otherKey }), 'TOKEN_INVALID');
    await assertRefused(
      server,
      await signToken(server, userClaims(server), { key: otherKey, kid: null }),
      'TOKEN_INVALID',
    );
    await assertRefused(
      server,
      await signToken(server, userClaims(server), { key: otherKey, kid: 'unknown-kid' }),
      'TOKEN_INVALID',
    );
  });

  it('refuses a token with a tampered payload', async () => {
    const claims = userClaims(server, { sub: 'mallory' });
    const token = await signToken(server, claims);
    await assertRefused(server, withPayload(token, { ...claims, sub: 'admin' }), 'TOKEN_INVALID');
    await assertRefused(
      server,
      withPayload(token, { ...claims, exp: (claims.exp as number) + 86_400 }),
      'TOKEN_INVALID',
    );
  });

  it('refuses a token with a tampered header or signature', async () => {
    const token = await signToken(server, userClaims(server));
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const hs512Header = Buffer.from(JSON.stringify({ alg: 'HS512', typ: 'JWT', kid: serverSigningKey(server).kid }));
    await assertRefused(server, `${hs512Header.toString('base64url')}.${payload}.${signature}`, 'TOKEN_INVALID');
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    await assertRefused(server, `${header}.${payload}.${flipped}`, 'TOKEN_INVALID');
    await assertRefused(server, `${header}.${payload}.`, 'TOKEN_INVALID');
    await assertRefused(server, `${header}.${payload}`, 'TOKEN_INVALID');
    await assertRefused(server, `${token}.${signature}`, 'TOKEN_INVALID');
  });

  it('refuses an expired token with TOKEN_EXPIRED', async () => {
    const iat = now(server) - 7200;
    await assertRefused(server, await signToken(server, userClaims(server, { iat, exp: iat + 3600 })), 'TOKEN_EXPIRED');
  });

  it('refuses a token that becomes valid later (iat or nbf in the future)', async () => {
    const later = now(server) + 3600;
    await assertRefused(
      server,
      await signToken(server, userClaims(server, { iat: later, exp: later + 3600 })),
      'TOKEN_INVALID',
    );
    await assertRefused(server, await signToken(server, userClaims(server, { nbf: later })), 'TOKEN_INVALID');
  });

  it('accepts iat and nbf a little ahead, within the clock tolerance', async () => {
    await assertAccepted(server, await signToken(server, userClaims(server, { nbf: now(server) + 2 })));
  });

  it('refuses a wrong audience or issuer', async () => {
    await assertRefused(server, await signToken(server, userClaims(server, { aud: 'someone-else' })), 'TOKEN_INVALID');
    await assertRefused(server, await signToken(server, userClaims(server, { aud: ['a', 'b'] })), 'TOKEN_INVALID');
    await assertRefused(server, await signToken(server, userClaims(server, { iss: 'evil' })), 'TOKEN_INVALID');
    const { iss: _iss, ...withoutIss } = userClaims(server);
    await assertRefused(server, await signToken(server, withoutIss), 'TOKEN_INVALID');
  });

  it('refuses a signed token without the claims Gatehouse needs', async () => {
    for (const broken of <Record<string, unknown>[]>[
      { kind: 'root' },
      { kind: undefined },
      { sub: '' },
      { sub: 42 },
      { sid: undefined },
      { exp: 'tomorrow' },
      { ver: 'x' },
    ]) {
      const claims = JSON.parse(JSON.stringify(userClaims(server, broken)));
      await assertRefused(server, await signToken(server, claims), 'TOKEN_INVALID');
    }
  });

  it('refuses a refresh token used as an access token', async () => {
    const login = await passwordUser(server, 'refresh-as-access');
    await assertRefused(server, login.refresh_token, 'TOKEN_INVALID');
    const rest = await api(server, 'POST', '/api/v1/ws-ticket', {
      headers: { authorization: `Bearer ${login.refresh_token}` },
    });
    assert.equal(rest.status, 401);
    assert.equal(rest.body.error, 'TOKEN_INVALID');
  });

  it('refuses garbage strings', async () => {
    for (const garbage of [
      'garbage',
      'a.b.c',
      '..',
      'e30.e30.e30',
      'Bearer',
      'ünïcödé.tökén.x',
      'x'.repeat(8000),
      `${'a'.repeat(3000)}.${'b'.repeat(3000)}.${'c'.repeat(2000)}`,
      `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.!!!.???`,
      'gtk_not-a-ticket',
    ])
      await assertRefused(server, garbage, 'TOKEN_INVALID');
  });

  it('refuses a token longer than 8 KiB: 200 TOKEN_INVALID as Bearer, a JSON 400 in the query', async () => {
    const huge = `${(await signToken(server, userClaims(server))).slice(0, -1)}${'x'.repeat(9000)}`;
    const asBearer = await api(server, 'GET', '/api/v1/public/validate-token', {
      headers: { authorization: `Bearer ${huge}` },
    });
    assert.equal(asBearer.status, 200);
    assert.equal(asBearer.body.valid, false);
    assert.equal(asBearer.body.error, 'TOKEN_INVALID');
    const inQuery = await validate(server, huge);
    assert.equal(inQuery.status, 400);
    assert.equal(inQuery.body.error, 'INVALID_REQUEST');
    const outcome = await tryConnect(`${server.wsUrl}/ws?token=${huge}`);
    assert.equal(outcome.kind, 'rejected');
    if (outcome.kind === 'rejected') assert.equal(outcome.code, 'TOKEN_INVALID');
  });

  it('refuses segments a lenient base64 decoder would read (padding, whitespace)', async () => {
    const token = await signToken(server, userClaims(server));
    const [header, payload, signature] = token.split('.') as [string, string, string];
    await assertRefused(server, `${header}.${payload}.${signature}=`, 'TOKEN_INVALID');
    await assertRefused(server, `${header}.${payload.slice(0, 8)} ${payload.slice(8)}.${signature}`, 'TOKEN_INVALID');
  });

  it('refuses a signature whose last character differs only in its unused padding bits', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const token = await signToken(server, userClaims(server));
    await assertAccepted(server, token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    // HS256: 32 bytes are 43 characters, the last one carrying 2 unused bits.
    assert.equal(signature.length % 4, 3);
    const last = alphabet.indexOf(signature.at(-1) as string);
    for (const bits of [1, 2, 3]) {
      const variant = `${signature.slice(0, -1)}${alphabet[last ^ bits]}`;
      assert.deepEqual(Buffer.from(variant, 'base64url'), Buffer.from(signature, 'base64url'), 'same bytes');
      await assertRefused(server, `${header}.${payload}.${variant}`, 'TOKEN_INVALID');
    }
  });

  it('refuses a token that names a critical header extension it does not understand', async () => {
    const { kid, key } = serverSigningKey(server);
    const payload = JSON.stringify(userClaims(server));
    await assertAccepted(server, hmacToken({ alg: 'HS256', typ: 'JWT', kid }, payload, key));
    const critical = hmacToken(
      { alg: 'HS256', typ: 'JWT', kid, crit: ['x-must-understand'], 'x-must-understand': true },
      payload,
      key,
    );
    await assertRefused(server, critical, 'TOKEN_INVALID');
  });
});

/** A keys file in a fresh folder; returns its path and a cleanup. */
function writeKeysFile(file: KeysFile): { path: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-keys-'));
  const path = join(dir, 'keys.json');
  writeFileSync(path, JSON.stringify(file));
  return { path, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

function pemPair(alg: 'EdDSA' | 'ES256') {
  const pair =
    alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

for (const alg of ['EdDSA', 'ES256'] as const) {
  describe(`${alg} signing keys`, () => {
    let server: TestServer;
    let keys: { path: string; dispose: () => void };
    let pair: ReturnType<typeof pemPair>;
    before(async () => {
      pair = pemPair(alg);
      keys = writeKeysFile({ signingKid: 'asym-1', keys: [{ kid: 'asym-1', alg, privateKey: pair.privatePem }] });
      server = await startServer({ tokens: { algorithms: [alg], keysFile: keys.path } });
    });
    after(async () => {
      await server.close();
      keys.dispose();
    });

    it(`signs tokens with ${alg} and the key's kid, and they verify on REST and WebSocket`, async () => {
      const agent = await agentLogin(server, `agent-${alg}`);
      assert.deepEqual(decodeProtectedHeader(agent.token), { alg, typ: 'JWT', kid: 'asym-1' });
      const check = await validate(server, agent.token);
      assert.equal(check.body.valid, true);
      const outcome = await tryConnect(`${server.wsUrl}/ws/chat`, {
        headers: { authorization: `Bearer ${agent.token}` },
      });
      assert.equal(outcome.kind, 'connected');
      if (outcome.kind === 'connected') {
        assert.equal(outcome.frame.body.user.id, `agent-${alg}`);
        await closeClient(outcome.client);
      }
      const verified = await jwtVerify(agent.token, pair.publicKey, {
        algorithms: [alg],
        issuer: 'gatehouse',
        audience: 'gatehouse',
        currentDate: new Date(server.clock.now()),
      });
      assert.equal(verified.payload.sub, `agent-${alg}`);
    });

    it('refuses an HS256 token, whatever secret signed it (algorithm pinning)', async () => {
      const claims = userClaims(server);
      await assertRefused(
        server,
        await signToken(server, claims, { key: randomBytes(32), kid: 'asym-1' }),
        'TOKEN_INVALID',
      );
      // The classic confusion: the public key's PEM used as an HMAC secret.
      await assertRefused(
        server,
        await signToken(server, claims, { key: Buffer.from(pair.publicPem), kid: 'asym-1' }),
        'TOKEN_INVALID',
      );
      await assertRefused(server, unsignedToken(claims), 'TOKEN_INVALID');
    });

    it('refuses a token signed by another key pair of the same algorithm', async () => {
      const other = pemPair(alg);
      const token = await signToken(server, userClaims(server), { key: other.privateKey, alg, kid: 'asym-1' });
      await assertRefused(server, token, 'TOKEN_INVALID');
    });
  });
}

describe('key rotation', () => {
  let server: TestServer;
  let keys: { path: string; dispose: () => void };
  const oldPair = pemPair('EdDSA');
  const newPair = pemPair('EdDSA');
  before(async () => {
    keys = writeKeysFile({
      signingKid: 'new',
      keys: [
        { kid: 'new', alg: 'EdDSA', privateKey: newPair.privatePem },
        // The retired key: verify-only, its private half is gone.
        { kid: 'old', alg: 'EdDSA', publicKey: oldPair.publicPem },
      ],
    });
    server = await startServer({ tokens: { algorithms: ['EdDSA'], keysFile: keys.path } });
  });
  after(async () => {
    await server.close();
    keys.dispose();
  });

  it('signs new tokens with the signing kid', async () => {
    const agent = await agentLogin(server, 'rotation-agent');
    assert.equal(decodeProtectedHeader(agent.token).kid, 'new');
    assert.equal((await validate(server, agent.token)).body.valid, true);
  });

  it('still verifies tokens signed with the old key under its kid', async () => {
    const token = await signToken(server, userClaims(server), { key: oldPair.privateKey, alg: 'EdDSA', kid: 'old' });
    await assertAccepted(server, token);
  });

  it('refuses an old-key token that claims the new kid, and a token with an unknown kid', async () => {
    const claims = userClaims(server);
    await assertRefused(
      server,
      await signToken(server, claims, { key: oldPair.privateKey, alg: 'EdDSA', kid: 'new' }),
      'TOKEN_INVALID',
    );
    await assertRefused(
      server,
      await signToken(server, claims, { key: newPair.privateKey, alg: 'EdDSA', kid: 'retired-long-ago' }),
      'TOKEN_INVALID',
    );
  });

  it('refuses a token without kid when several keys of its algorithm could have signed it', async () => {
    const token = await signToken(server, userClaims(server), { key: newPair.privateKey, alg: 'EdDSA', kid: null });
    await assertRefused(server, token, 'TOKEN_INVALID');
  });
});

describe('TokenService.verifyAccessToken against jose jwtVerify (differential)', () => {
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
  const options = {
    issuer: 'gatehouse',
    audience: 'gatehouse',
    algorithms: ['HS256', 'EdDSA'],
    clockToleranceMs: 5000,
  };
  const hmacSecret = randomBytes(32);
  const edPair = pemPair('EdDSA');
  const file: KeysFile = {
    signingKid: 'h1',
    keys: [
      { kid: 'h1', alg: 'HS256', secret: hmacSecret.toString('base64url') },
      { kid: 'e1', alg: 'EdDSA', privateKey: edPair.privatePem },
    ],
  };
  const service = new TokenService(keyRingFrom(file, options.algorithms), options, clock);
  const keyFor: Record<string, { alg: string; key: KeyObject | Uint8Array }> = {
    h1: { alg: 'HS256', key: hmacSecret },
    e1: { alg: 'EdDSA', key: edPair.publicKey },
  };
  const t = Math.floor(clock.now() / 1000);
  const claims = (over: Record<string, unknown> = {}) => ({
    sub: 'u1',
    kind: 'user',
    sid: 's1',
    jti: 'j1',
    iat: t - 60,
    exp: t + 3600,
    iss: 'gatehouse',
    aud: 'gatehouse',
    ...over,
  });
  const sign = (payload: Record<string, unknown>, kid = 'h1', key?: KeyObject | Uint8Array, alg?: string) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: alg ?? keyFor[kid]?.alg ?? 'HS256', typ: 'JWT', kid })
      .sign(key ?? (kid === 'e1' ? edPair.privateKey : hmacSecret));

  async function joseAccepts(token: string): Promise<boolean> {
    try {
      await jwtVerify(
        token,
        (header) => {
          const entry = typeof header.kid === 'string' ? keyFor[header.kid] : undefined;
          if (!entry || entry.alg !== header.alg) throw new Error('no key');
          return entry.key;
        },
        {
          algorithms: options.algorithms,
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

  it('accepts and refuses exactly the tokens jose accepts and refuses', async () => {
    const valid = await sign(claims());
    const validEd = await sign(claims(), 'e1');
    const [h, p, s] = valid.split('.') as [string, string, string];
    const [eh, ep, es] = validEd.split('.') as [string, string, string];
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const flip = (seg: string, i: number) => seg.slice(0, i) + (seg[i] === 'A' ? 'B' : 'A') + seg.slice(i + 1);
    const cases: Record<string, string> = {
      valid,
      'valid EdDSA': validEd,
      'aud array': await sign(claims({ aud: ['x', 'gatehouse'] })),
      'exp a little in the past (within tolerance)': await sign(claims({ exp: t - 2 })),
      'nbf a little ahead (within tolerance)': await sign(claims({ nbf: t + 2 })),
      'expired long ago': await sign(claims({ iat: t - 7200, exp: t - 3600 })),
      'nbf in the future': await sign(claims({ nbf: t + 3600 })),
      'wrong iss': await sign(claims({ iss: 'other' })),
      'wrong aud': await sign(claims({ aud: 'other' })),
      'aud array without the audience': await sign(claims({ aud: ['x', 'y'] })),
      'no exp': await sign(claims({ exp: undefined })),
      'exp not a number': await sign(claims({ exp: String(t + 3600) })),
      'payload sub changed': `${h}.${b64(claims({ sub: 'admin' }))}.${s}`,
      'payload exp extended': `${h}.${b64(claims({ exp: t + 999_999 }))}.${s}`,
      'signature flipped': `${h}.${p}.${flip(s, 5)}`,
      'EdDSA signature flipped': `${eh}.${ep}.${flip(es, 20)}`,
      'signature truncated': `${h}.${p}.${s.slice(0, -2)}`,
      'signature empty': `${h}.${p}.`,
      'signature from another token': `${h}.${p}.${(await sign(claims({ sub: 'other' }))).split('.')[2]}`,
      'EdDSA signature under the HS256 header': `${h}.${ep}.${es}`,
      'header alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      'header alg none with signature': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${s}`,
      'header alg HS512': `${b64({ alg: 'HS512', typ: 'JWT', kid: 'h1' })}.${p}.${s}`,
      'header alg EdDSA on the HMAC kid': `${b64({ alg: 'EdDSA', typ: 'JWT', kid: 'h1' })}.${p}.${s}`,
      'HS256 signed with the Ed25519 public PEM': await sign(claims(), 'e1', Buffer.from(edPair.publicPem), 'HS256'),
      'another secret': await sign(claims(), 'h1', randomBytes(32)),
      'unknown kid': await sign(claims(), 'h9', hmacSecret, 'HS256'),
      'four segments': `${valid}.${s}`,
      'two segments': `${h}.${p}`,
      'payload not JSON': await new CompactSign(Buffer.from('not json'))
        .setProtectedHeader({ alg: 'HS256', kid: 'h1' })
        .sign(hmacSecret),
      'payload a JSON array': await new CompactSign(Buffer.from('[1,2]'))
        .setProtectedHeader({ alg: 'HS256', kid: 'h1' })
        .sign(hmacSecret),
      'crit header': hmacToken(
        { alg: 'HS256', kid: 'h1', crit: ['zzz'], zzz: 1 },
        JSON.stringify(claims()),
        hmacSecret,
      ),
      'empty crit header': hmacToken({ alg: 'HS256', kid: 'h1', crit: [] }, JSON.stringify(claims()), hmacSecret),
      garbage: 'not-a-jwt',
    };
    const disagreements: string[] = [];
    let accepted = 0;
    for (const [name, token] of Object.entries(cases)) {
      const ours = service.verifyAccessToken(token).ok;
      const theirs = await joseAccepts(token);
      if (ours) accepted++;
      if (ours !== theirs) disagreements.push(`${name}: gatehouse ${ours}, jose ${theirs}`);
    }
    assert.deepEqual(disagreements, []);
    assert.equal(accepted, 5, 'the valid cases are accepted (the comparison is not vacuous)');
  });

  it('agrees after time moves past the expiry', async () => {
    const token = await sign(claims({ exp: t + 120 }));
    assert.equal(service.verifyAccessToken(token).ok, true);
    assert.equal(await joseAccepts(token), true);
    clock.advance(130_000);
    const result = service.verifyAccessToken(token);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 'TOKEN_EXPIRED');
    assert.equal(await joseAccepts(token), false);
  });
});
