import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual, verify } from 'node:crypto';
import { PRINCIPAL_KINDS, type PrincipalKind, TOKEN_EXPIRED_MESSAGE } from '@gatehouse/protocol';
import { SignJWT } from 'jose';
import { isWellFormedText } from '../auth/well-formed-text.js';
import type { Clock } from '../clock.js';
import type { KeyRing, SigningKey } from './signing-keys.js';

/** Claims of a Gatehouse access token (SPEC §1). `name` and `ver` are Gatehouse additions. */
export interface AccessClaims {
  sub: string;
  kind: PrincipalKind;
  sid: string;
  jti: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string | string[];
  dev?: string;
  did?: string;
  /** Display name, so a handshake needs no lookup to fill `connected.user.name`. */
  name?: string;
  /** The principal's token version when issued; "revoke all" bumps it. */
  ver?: number;
}

export type VerifyFailure = {
  ok: false;
  code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED';
  message: string;
  /** Present when the signature was good but the times were not (so callers can name the kind). */
  claims?: AccessClaims;
};
export type VerifyResult = { ok: true; claims: AccessClaims } | VerifyFailure;

export interface TokenServiceOptions {
  issuer: string;
  audience: string;
  algorithms: readonly string[];
  clockToleranceMs: number;
  /** About how many verified tokens to remember (signature and JSON work skipped on a hit). */
  cacheSize?: number;
}

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const HMAC_DIGEST: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const REFRESH_PREFIX = 'grt_';
const TICKET_PREFIX = 'gtk_';

const invalid = (message: string): VerifyFailure => ({ ok: false, code: 'TOKEN_INVALID', message });
/** A token that cannot be read at all; the message says which part is wrong. */
const malformed = (what: string): VerifyFailure => invalid(`malformed token: ${what}`);
const NOT_ACCEPTED = 'token algorithm or key id is not accepted';
const DOUBLED_BEARER = 'it starts with "Bearer " (a doubled "Bearer" prefix? send "Bearer <token>" once)';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Whether a segment is unpadded base64url in its one canonical spelling: only the alphabet,
 * no length that leaves 6 stray bits, and the unused low bits of the last character zero.
 * Node's decoder ignores those bits, so without this check several spellings of one signature
 * would all verify.
 */
export function isCanonicalBase64url(segment: string): boolean {
  if (segment.length === 0 || !SEGMENT.test(segment)) return false;
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = BASE64URL.indexOf(segment[segment.length - 1] as string);
  return rest === 2 ? (last & 0b1111) === 0 : (last & 0b11) === 0;
}

/** SHA-256 hex of an opaque credential; only hashes of refresh tokens, tickets and app keys are stored. */
export const hashSecret = (value: string): string => createHash('sha256').update(value).digest('hex');

export const isTicket = (credential: string): boolean => credential.startsWith(TICKET_PREFIX);

/**
 * Signs and verifies access tokens; makes opaque refresh tokens and tickets.
 *
 * Signing goes through jose. Verification is done here with node:crypto because it is the
 * hot path of every handshake: the header is looked up in a small cache, the algorithm is
 * pinned to the key's, and the signature check is one HMAC (or one crypto.verify). A test
 * checks this verifier against jose's on valid and tampered tokens.
 */
export class TokenService {
  private readonly headerCache = new Map<string, SigningKey>();
  /**
   * Verified tokens in two generations: when the recent one is full it becomes the older
   * one and the older one is dropped. Eviction is O(1) (evicting a Map's oldest key one at a
   * time makes each `keys().next()` walk past every hole left by earlier deletions), and the
   * bound is small: entries keep whole tokens alive, and a miss costs only a few µs.
   */
  private recent = new Map<string, AccessClaims>();
  private older = new Map<string, AccessClaims>();
  private readonly generationSize: number;

  constructor(
    private readonly ring: KeyRing,
    private readonly options: TokenServiceOptions,
    private readonly clock: Clock,
  ) {
    this.generationSize = Math.max(1, Math.ceil((options.cacheSize ?? 1_000) / 2));
  }

  async signAccessToken(
    claims: Pick<AccessClaims, 'sub' | 'kind' | 'sid' | 'name' | 'dev' | 'did' | 'ver'>,
    ttlMs: number,
  ): Promise<{ token: string; claims: AccessClaims }> {
    const iat = Math.floor(this.clock.now() / 1000);
    const full: AccessClaims = {
      ...claims,
      jti: randomUUID(),
      iat,
      exp: iat + Math.max(1, Math.round(ttlMs / 1000)),
      iss: this.options.issuer,
      aud: this.options.audience,
    };
    for (const key of Object.keys(full) as (keyof AccessClaims)[]) if (full[key] === undefined) delete full[key];
    const { signing } = this.ring;
    const token = await new SignJWT({ ...full })
      .setProtectedHeader({ alg: signing.alg, typ: 'JWT', kid: signing.kid })
      .sign(signing.signKey as NonNullable<SigningKey['signKey']>);
    return { token, claims: full };
  }

  /** Checks signature, algorithm, issuer, audience and times. Revocation is the caller's. */
  verifyAccessToken(token: string): VerifyResult {
    let claims = this.recent.get(token);
    if (!claims) {
      claims = this.older.get(token);
      if (!claims) {
        let result: VerifyResult;
        try {
          result = this.verifySignatureAndParse(token);
        } catch {
          // Whatever a crafted token makes the crypto or JSON code throw is a refusal, never a 500.
          result = invalid('token could not be verified');
        }
        if (!result.ok) return result;
        claims = result.claims;
      }
      if (this.recent.size >= this.generationSize) {
        this.older = this.recent;
        this.recent = new Map();
      }
      this.recent.set(token, claims);
    }
    return this.checkTimes(claims);
  }

  private checkTimes(claims: AccessClaims): VerifyResult {
    const now = this.clock.now();
    const tolerance = this.options.clockToleranceMs;
    if (claims.exp * 1000 <= now - tolerance)
      return { ok: false, code: 'TOKEN_EXPIRED', message: TOKEN_EXPIRED_MESSAGE, claims };
    const nbf = (claims as { nbf?: unknown }).nbf;
    if ((typeof nbf === 'number' && nbf * 1000 > now + tolerance) || claims.iat * 1000 > now + tolerance)
      return { ...invalid('token is not valid yet'), claims };
    return { ok: true, claims };
  }

  private verifySignatureAndParse(token: string): VerifyResult {
    if (token.length > 8192) return malformed('it is longer than 8192 characters');
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    if (dot1 <= 0 || dot2 <= dot1 + 1 || dot2 === token.length - 1 || token.indexOf('.', dot2 + 1) !== -1) {
      if (/^bearer\s/i.test(token)) return malformed(DOUBLED_BEARER);
      return malformed('a JWT is three non-empty base64url parts separated by dots');
    }
    const header = token.slice(0, dot1);
    const payloadPart = token.slice(dot1 + 1, dot2);
    const signaturePart = token.slice(dot2 + 1);
    const key = this.keyForHeader(header);
    if (!('alg' in key)) return key;
    if (!isCanonicalBase64url(payloadPart)) return malformed('the payload is not base64url');
    if (!isCanonicalBase64url(signaturePart)) return malformed('the signature is not base64url');
    const signingInput = token.slice(0, dot2);
    const signature = Buffer.from(signaturePart, 'base64url');
    if (!this.signatureMatches(key, signingInput, signature)) return invalid('token signature is invalid');
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8'));
    } catch {
      return malformed('the payload is not JSON');
    }
    return this.checkClaims(payload);
  }

  private signatureMatches(key: SigningKey, input: string, signature: Buffer): boolean {
    const digest = HMAC_DIGEST[key.alg];
    if (digest) {
      const expected = createHmac(digest, key.verifyKey).update(input).digest();
      return expected.length === signature.length && timingSafeEqual(expected, signature);
    }
    const data = Buffer.from(input);
    if (key.alg === 'EdDSA') return verify(null, data, key.verifyKey, signature);
    if (key.alg === 'ES256')
      return verify('sha256', data, { key: key.verifyKey, dsaEncoding: 'ieee-p1363' }, signature);
    return verify('sha256', data, key.verifyKey, signature); // RS256
  }

  /**
   * The key a header names, or the refusal: "malformed token" when the header cannot be read,
   * "not accepted" only for a readable header whose algorithm is not pinned or whose kid is unknown.
   */
  private keyForHeader(header: string): SigningKey | VerifyFailure {
    const cached = this.headerCache.get(header);
    if (cached !== undefined) return cached;
    if (/^bearer\s/i.test(header)) return malformed(DOUBLED_BEARER);
    if (header.length >= 512) return malformed('the header is longer than 511 characters');
    if (!isCanonicalBase64url(header)) return malformed('the header is not base64url');
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    } catch {
      return malformed('the header is not JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      return malformed('the header is not a JSON object');
    const { alg, kid, crit } = parsed as { alg?: unknown; kid?: unknown; crit?: unknown };
    if (typeof alg !== 'string') return malformed('the header has no "alg"');
    if (kid !== undefined && typeof kid !== 'string') return malformed('the header\'s "kid" is not a string');
    // No header extension is understood here, so any `crit` means refuse (RFC 7515 §4.1.11).
    if (crit !== undefined) return invalid('token header names a critical extension that is not understood');
    if (!this.options.algorithms.includes(alg)) return invalid(NOT_ACCEPTED);
    let key: SigningKey | undefined;
    if (typeof kid === 'string') key = this.ring.byKid.get(kid);
    else {
      const candidates = [...this.ring.byKid.values()].filter((k) => k.alg === alg);
      key = candidates.length === 1 ? candidates[0] : undefined;
    }
    if (!key || key.alg !== alg) return invalid(NOT_ACCEPTED);
    // Only headers that name a key are remembered, so junk cannot grow the cache.
    if (this.headerCache.size < 256) this.headerCache.set(header, key);
    return key;
  }

  private checkClaims(payload: unknown): VerifyResult {
    if (!payload || typeof payload !== 'object' || Array.isArray(payload))
      return invalid('token payload is not an object');
    const c = payload as Record<string, unknown>;
    if (c.iss !== this.options.issuer) return invalid('token issuer is not accepted');
    const aud = c.aud;
    if (!(aud === this.options.audience || (Array.isArray(aud) && aud.includes(this.options.audience))))
      return invalid('token audience is not accepted');
    if (typeof c.sub !== 'string' || c.sub.length === 0 || c.sub.length > 256 || c.sub.includes('\u0000'))
      return invalid('token has no subject');
    if (!isWellFormedText(c.sub)) return invalid('token subject is not well-formed Unicode');
    if (typeof c.kind !== 'string' || !PRINCIPAL_KINDS.includes(c.kind as PrincipalKind))
      return invalid('token has no principal kind');
    if (
      typeof c.sid !== 'string' ||
      c.sid.length === 0 ||
      c.sid.length > 256 ||
      c.sid.includes('\u0000') ||
      !isWellFormedText(c.sid)
    )
      return invalid('token has no session id');
    if (typeof c.exp !== 'number' || typeof c.iat !== 'number') return invalid('token has no exp or iat');
    for (const optional of ['dev', 'did', 'name'] as const)
      if (c[optional] !== undefined && typeof c[optional] !== 'string')
        return invalid(`token claim ${optional} is not a string`);
    if (c.ver !== undefined && typeof c.ver !== 'number') return invalid('token claim ver is not a number');
    return { ok: true, claims: c as unknown as AccessClaims };
  }

  /** A new opaque refresh token (256 random bits) and the hash to store. */
  newRefreshToken(): { token: string; hash: string } {
    const token = REFRESH_PREFIX + randomBytes(32).toString('base64url');
    return { token, hash: hashSecret(token) };
  }

  /** A new opaque single-use connect ticket and the hash to store. */
  newTicket(): { ticket: string; hash: string } {
    const ticket = TICKET_PREFIX + randomBytes(32).toString('base64url');
    return { ticket, hash: hashSecret(ticket) };
  }
}
