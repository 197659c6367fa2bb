import { randomBytes, randomUUID } from 'node:crypto';
import {
  normalizeDeviceType,
  type PrincipalInfo,
  type PrincipalKind,
  TOKEN_EXPIRED_MESSAGE,
} from '@gatehouse/protocol';
import type { Clock } from '../clock.js';
import { type GatehouseConfig, ms } from '../config.js';

import type { ControlChannel } from '../control-channel.js';
import { GatehouseError } from '../errors.js';
import type { PrincipalRecord, Store } from '../store/store.js';
import { type AccessClaims, hashSecret, isTicket, type TokenService } from '../tokens/token-service.js';
import { hashPassword, verifyPassword } from './passwords.js';
import type { RateLimits } from './rate-limits.js';
import type { RevocationCache } from './revocation-cache.js';
import { requireWellFormed } from './well-formed-text.js';

/** Who a verified credential speaks for, and until when. */
export interface AuthContext {
  principal: PrincipalInfo;
  sid: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  deviceType: string | null;
  deviceId: string | null;
}

export interface IssuedTokens {
  token: string;
  refreshToken: string | null;
  expiresAt: number;
  principal: PrincipalInfo;
  sid: string;
  /** A refresh answered in the reuse grace period (logged: a reload, or a copied token). */
  reuseGrace?: true;
}

export interface DeviceInfo {
  deviceType?: string | null | undefined;
  deviceId?: string | null | undefined;
}

const info = (p: PrincipalRecord): PrincipalInfo => ({ id: p.id, kind: p.kind, name: p.name });

/** The slice of the configuration AuthService uses: token lifetimes, in milliseconds. */
export interface TokenLifetimes {
  access: Record<PrincipalKind, number>;
  refresh: { user: number; customer: number };
  ticket: number;
  /** How long a just-rotated refresh token may be presented once more (`auth.refreshReuseGrace`); 0: never. */
  refreshReuseGrace: number;
}

export function tokenLifetimes(config: GatehouseConfig): TokenLifetimes {
  return {
    access: {
      user: ms(config, 'tokens.ttl.user'),
      agent: ms(config, 'tokens.ttl.agent'),
      customer: ms(config, 'tokens.ttl.customer'),
    },
    refresh: { user: ms(config, 'tokens.refreshTtl.user'), customer: ms(config, 'tokens.refreshTtl.customer') },
    ticket: ms(config, 'tokens.ticketTtl'),
    refreshReuseGrace: ms(config, 'auth.refreshReuseGrace'),
  };
}

/**
 * Issues and checks every credential: password and app-key logins, customer tokens,
 * refresh rotation with reuse detection, tickets, logout, revoke-all and block.
 */
export class AuthService {
  constructor(
    private readonly store: Store,
    private readonly tokens: TokenService,
    private readonly revocations: RevocationCache,
    private readonly control: ControlChannel,
    private readonly limits: RateLimits,
    private readonly lifetimes: TokenLifetimes,
    private readonly clock: Clock,
  ) {}

  private accessTtl(kind: PrincipalKind): number {
    return this.lifetimes.access[kind];
  }

  /** Creates a password account (agent, or a user an operator manages). */
  async createAccount(input: {
    kind: 'agent' | 'user';
    username: string;
    password: string;
    name?: string;
    id?: string;
  }): Promise<PrincipalInfo> {
    requireWellFormed('username', input.username);
    if (input.id !== undefined) requireWellFormed('id', input.id);
    if (input.name !== undefined) requireWellFormed('name', input.name);
    const record: PrincipalRecord = {
      id: input.id ?? input.username,
      kind: input.kind,
      name: input.name ?? input.username,
      passwordHash: await hashPassword(input.password),
      appKeyId: null,
      avatar: null,
      extras: null,
      tokenVersion: 0,
      blocked: false,
      createdAt: this.clock.now(),
      lastLoginAt: null,
    };
    if (!(await this.store.createPrincipal(record)))
      throw new GatehouseError('CONFLICT', `principal "${record.id}" already exists`);
    return info(record);
  }

  /** Starts a login session and issues its tokens (a refresh token for kinds that have one). */
  async startSession(
    principal: PrincipalRecord | PrincipalInfo,
    device: DeviceInfo,
    accessTtlMs = this.accessTtl(principal.kind),
  ): Promise<IssuedTokens> {
    // Every token is issued here: its `sub` must be the id exactly as the store keeps it.
    requireWellFormed('principal id', principal.id);
    const now = this.clock.now();
    const sid = randomUUID();
    const deviceType = device.deviceType ? normalizeDeviceType(device.deviceType) : null;
    const deviceId = device.deviceId ?? null;
    await this.store.createLoginSession({
      sid,
      principalId: principal.id,
      kind: principal.kind,
      deviceType,
      deviceId,
      createdAt: now,
      revokedAt: null,
    });
    const version =
      'tokenVersion' in principal
        ? principal.tokenVersion
        : (await this.revocations.principal(principal.id)).tokenVersion;
    const access = await this.tokens.signAccessToken(
      {
        sub: principal.id,
        kind: principal.kind,
        sid,
        name: principal.name,
        ver: version,
        ...(deviceType ? { dev: deviceType } : {}),
        ...(deviceId ? { did: deviceId } : {}),
      },
      accessTtlMs,
    );
    let refreshToken: string | null = null;
    if (principal.kind !== 'agent') {
      const refresh = this.tokens.newRefreshToken();
      await this.store.saveRefreshToken({
        hash: refresh.hash,
        familyId: sid,
        sid,
        principalId: principal.id,
        kind: principal.kind,
        deviceType,
        deviceId,
        createdAt: now,
        expiresAt: now + this.lifetimes.refresh[principal.kind as 'user' | 'customer'],
        usedAt: null,
      });
      refreshToken = refresh.token;
    }
    return {
      token: access.token,
      refreshToken,
      expiresAt: access.claims.exp * 1000,
      principal: { id: principal.id, kind: principal.kind, name: principal.name },
      sid,
    };
  }

  /** Username + password login, rate-limited per account and per IP. */
  async passwordLogin(username: string, password: string, ip: string, device: DeviceInfo): Promise<IssuedTokens> {
    requireWellFormed('username', username);
    await this.limits.loginAttempt(username, ip);
    const principal = await this.store.getPrincipal(username);
    const ok = await verifyPassword(principal?.passwordHash ?? null, password);
    if (!ok || !principal) throw new GatehouseError('LOGIN_FAILED', 'invalid username or password');
    if (principal.blocked) throw new GatehouseError('FORBIDDEN', 'this account is blocked');
    await this.limits.loginSucceeded(username, ip);
    await this.store.setLastLogin(principal.id, this.clock.now());
    return this.startSession(principal, device);
  }

  /** The open API: an app (by its key) creates or updates its user and gets a token for it. */
  async appUserLogin(
    appKey: string | undefined,
    user: { id: string; nickname: string; avatar?: string | null; extras?: unknown },
    device: DeviceInfo,
  ): Promise<{ tokens: IssuedTokens; principal: PrincipalRecord }> {
    const app = await this.findApp(appKey);
    requireWellFormed('id', user.id);
    requireWellFormed('nickname', user.nickname);
    const principal = await this.store.upsertAppUser(
      app.id,
      { id: user.id, name: user.nickname, avatar: user.avatar ?? null, extras: user.extras ?? null },
      this.clock.now(),
    );
    if (principal === 'conflict')
      throw new GatehouseError('CONFLICT', `user id "${user.id}" belongs to another app or account`);
    if (principal.blocked) throw new GatehouseError('FORBIDDEN', 'this user is blocked');
    return { tokens: await this.startSession(principal, device), principal };
  }

  /** A new app key; the key itself is returned once and only its hash is stored. */
  async createAppKey(name: string): Promise<{ id: string; name: string; key: string; createdAt: number }> {
    const key = `gak_${randomBytes(24).toString('base64url')}`;
    const record = {
      id: `app_${randomBytes(6).toString('hex')}`,
      name,
      keyHash: hashSecret(key),
      createdAt: this.clock.now(),
    };
    await this.store.createAppKey(record);
    return { id: record.id, name, key, createdAt: record.createdAt };
  }

  /** Resolves an `X-App-Key`; throws 401 for a missing or unknown key. */
  async findApp(appKey: string | undefined): Promise<{ id: string; name: string }> {
    const app = appKey ? await this.store.findAppKey(hashSecret(appKey)) : null;
    if (!app) throw new GatehouseError('TOKEN_INVALID', 'missing or unknown X-App-Key', { status: 401 });
    return app;
  }

  /** A new anonymous customer and its tokens. */
  async createCustomer(
    input: { name: string; channel: string; extras: unknown },
    ip: string,
  ): Promise<{ customer: PrincipalRecord; tokens: IssuedTokens }> {
    await this.limits.customerToken(ip);
    const now = this.clock.now();
    const customer: PrincipalRecord = {
      id: randomUUID(),
      kind: 'customer',
      name: input.name,
      passwordHash: null,
      appKeyId: null,
      avatar: null,
      extras: { channel: input.channel, ...(input.extras && typeof input.extras === 'object' ? input.extras : {}) },
      tokenVersion: 0,
      blocked: false,
      createdAt: now,
      lastLoginAt: now,
    };
    await this.store.createPrincipal(customer);
    return { customer, tokens: await this.startSession(customer, { deviceType: 'web' }) };
  }

  /**
   * Rotates a refresh token: the old one is spent, a new pair is issued for the same login
   * session. Presenting a spent token revokes the whole session (reuse detection) — except the
   * grace case: the token rotated less than `auth.refreshReuseGrace` ago whose successor was
   * never used (a page closed before it stored the answer). That gets a new pair once, and the
   * unused successor dies, so the session still has a single live refresh token (docs/tokens.md).
   */
  async refresh(
    refreshToken: string,
    expect: { principalId?: string; kind?: PrincipalKind } = {},
  ): Promise<IssuedTokens> {
    if (expect.principalId !== undefined) requireWellFormed('customer id', expect.principalId);
    const hash = hashSecret(refreshToken);
    // Whose token it is is checked before it is spent: a call naming the wrong principal must
    // not burn the owner's token (the owner's next, rightful call would then look like reuse).
    if (expect.principalId || expect.kind) {
      const owner = await this.store.getRefreshToken(hash);
      if (
        owner &&
        ((expect.principalId && owner.principalId !== expect.principalId) ||
          (expect.kind && owner.kind !== expect.kind))
      )
        throw new GatehouseError('TOKEN_INVALID', 'refresh token does not belong to this principal');
    }
    const next = this.tokens.newRefreshToken();
    const use = await this.store.rotateRefreshToken(
      hash,
      next.hash,
      this.clock.now(),
      this.lifetimes.refreshReuseGrace,
    );
    if (use.status === 'reused') {
      await this.revokeSession(use.token.sid);
      throw new GatehouseError('TOKEN_REVOKED', 'refresh token was already used; the session is revoked');
    }
    if (use.status === 'expired') throw new GatehouseError('TOKEN_EXPIRED', 'refresh token expired: log in again');
    if (use.status !== 'ok' && use.status !== 'grace')
      throw new GatehouseError('TOKEN_INVALID', 'refresh token is not valid');
    const old = use.token;
    if (await this.revocations.sessionRevoked(old.sid)) throw new GatehouseError('TOKEN_REVOKED', 'session is revoked');
    const principal = await this.store.getPrincipal(old.principalId);
    if (!principal) throw new GatehouseError('TOKEN_INVALID', 'principal no longer exists');
    if (principal.blocked) throw new GatehouseError('FORBIDDEN', 'this account is blocked');
    const access = await this.tokens.signAccessToken(
      {
        sub: principal.id,
        kind: principal.kind,
        sid: old.sid,
        name: principal.name,
        ver: principal.tokenVersion,
        ...(old.deviceType ? { dev: old.deviceType } : {}),
        ...(old.deviceId ? { did: old.deviceId } : {}),
      },
      this.accessTtl(principal.kind),
    );
    return {
      token: access.token,
      refreshToken: next.token,
      expiresAt: access.claims.exp * 1000,
      principal: info(principal),
      sid: old.sid,
      ...(use.status === 'grace' ? { reuseGrace: true as const } : {}),
    };
  }

  /**
   * Verifies an access token or a ticket for a connection: signature, times, revocation,
   * block and device binding. Throws a GatehouseError with the refusal code.
   */
  async authenticate(credential: string, connectionDeviceId: string | null): Promise<AuthContext> {
    if (isTicket(credential)) return this.redeemTicket(credential, connectionDeviceId);
    const result = this.tokens.verifyAccessToken(credential);
    if (!result.ok) throw new GatehouseError(result.code, result.message);
    return this.checkClaims(result.claims, connectionDeviceId);
  }

  /** Verifies an access token for a REST call (no device binding: REST has no device). */
  async authenticateRequest(credential: string): Promise<AuthContext & { claims: AccessClaims }> {
    const result = this.tokens.verifyAccessToken(credential);
    if (!result.ok) throw new GatehouseError(result.code, result.message);
    const context = await this.checkRevocation(result.claims);
    return { ...context, claims: result.claims };
  }

  private async checkClaims(claims: AccessClaims, connectionDeviceId: string | null): Promise<AuthContext> {
    if (claims.did !== undefined && claims.did !== connectionDeviceId)
      throw new GatehouseError('DEVICE_MISMATCH', 'token is bound to another device id');
    return this.checkRevocation(claims);
  }

  private async checkRevocation(claims: AccessClaims): Promise<AuthContext> {
    // Both looked up at once (one store read when neither is cached); the refusal order stays the same.
    const { principal: state, sessionRevoked } = await this.revocations.check(claims.sub, claims.sid);
    if (state.blocked) throw new GatehouseError('FORBIDDEN', 'this account is blocked');
    if ((claims.ver ?? 0) < state.tokenVersion) throw new GatehouseError('TOKEN_REVOKED', 'token has been revoked');
    if (sessionRevoked) throw new GatehouseError('TOKEN_REVOKED', 'session has been logged out');
    return {
      principal: { id: claims.sub, kind: claims.kind, name: claims.name ?? claims.sub },
      sid: claims.sid,
      expiresAt: claims.exp * 1000,
      deviceType: claims.dev ? normalizeDeviceType(claims.dev) : null,
      deviceId: claims.did ?? null,
    };
  }

  /** A single-use ticket standing for the caller's access token, valid for `tokens.ticketTtl`. */
  async issueTicket(context: AuthContext & { claims: AccessClaims }): Promise<{ ticket: string; expiresIn: number }> {
    const ttl = this.lifetimes.ticket;
    const { ticket, hash } = this.tokens.newTicket();
    await this.store.saveTicket({
      hash,
      principalId: context.principal.id,
      kind: context.principal.kind,
      name: context.principal.name,
      sid: context.sid,
      tokenVersion: context.claims.ver ?? 0,
      deviceType: context.deviceType,
      deviceId: context.deviceId,
      tokenExpiresAt: context.expiresAt,
      expiresAt: this.clock.now() + ttl,
    });
    return { ticket, expiresIn: Math.round(ttl / 1000) };
  }

  private async redeemTicket(ticket: string, connectionDeviceId: string | null): Promise<AuthContext> {
    const record = await this.store.consumeTicket(hashSecret(ticket), this.clock.now());
    if (!record) throw new GatehouseError('TOKEN_INVALID', 'ticket is unknown, expired or already used');
    if (record.tokenExpiresAt <= this.clock.now()) throw new GatehouseError('TOKEN_EXPIRED', TOKEN_EXPIRED_MESSAGE);
    return this.checkClaims(
      {
        sub: record.principalId,
        kind: record.kind,
        sid: record.sid,
        name: record.name,
        ver: record.tokenVersion,
        exp: Math.floor(record.tokenExpiresAt / 1000),
        iat: 0,
        jti: '',
        iss: '',
        aud: '',
        ...(record.deviceType ? { dev: record.deviceType } : {}),
        ...(record.deviceId ? { did: record.deviceId } : {}),
      },
      connectionDeviceId,
    );
  }

  /** Logout: the session's tokens stop working and its sockets close with 4410 on every node. */
  async revokeSession(sid: string): Promise<void> {
    await this.store.revokeLoginSession(sid, this.clock.now());
    this.revocations.markSessionRevoked(sid);
    await this.control.publish({ op: 'session-revoked', sid, reason: 'REVOKED' });
  }

  /** Revokes every token of a principal (bumps its token version) and closes its sockets. */
  async revokePrincipal(id: string): Promise<boolean> {
    const principal = await this.store.bumpTokenVersion(id, this.clock.now());
    if (!principal) return false;
    this.revocations.setPrincipal(id, { tokenVersion: principal.tokenVersion, blocked: principal.blocked });
    await this.control.publish({ op: 'principal-revoked', id, tokenVersion: principal.tokenVersion });
    return true;
  }

  async setBlocked(id: string, blocked: boolean): Promise<boolean> {
    const principal = await this.store.setBlocked(id, blocked);
    if (!principal) return false;
    this.revocations.setPrincipal(id, { tokenVersion: principal.tokenVersion, blocked });
    await this.control.publish({ op: blocked ? 'blocked' : 'unblocked', id, tokenVersion: principal.tokenVersion });
    return true;
  }
}
