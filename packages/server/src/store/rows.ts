import type { PrincipalKind } from '@gatehouse/protocol';
import type {
  AppKeyRecord,
  ConversationRecord,
  LoginSessionRecord,
  MessageRecord,
  PrincipalRecord,
  RefreshTokenRecord,
  SupportListing,
  TicketRecord,
} from './store.js';

/**
 * Table rows as both SQL stores return them (same snake_case columns) and their mapping to
 * the Store records. Only principals differ by store: `extras` and `blocked` are decoded by
 * the store before mapping (TEXT/INTEGER in SQLite, JSONB/BOOLEAN in PostgreSQL).
 */

export interface PrincipalRow {
  id: string;
  kind: PrincipalKind;
  name: string;
  password_hash: string | null;
  app_key_id: string | null;
  avatar: string | null;
  token_version: number;
  created_at: number;
  last_login_at: number | null;
}

export const toPrincipal = (row: PrincipalRow, extras: unknown, blocked: boolean): PrincipalRecord => ({
  id: row.id,
  kind: row.kind,
  name: row.name,
  passwordHash: row.password_hash,
  appKeyId: row.app_key_id,
  avatar: row.avatar,
  extras,
  tokenVersion: row.token_version,
  blocked,
  createdAt: row.created_at,
  lastLoginAt: row.last_login_at,
});

export interface LoginSessionRow {
  sid: string;
  principal_id: string;
  kind: PrincipalKind;
  device_type: string | null;
  device_id: string | null;
  created_at: number;
  revoked_at: number | null;
}

export const toLoginSession = (row: LoginSessionRow): LoginSessionRecord => ({
  sid: row.sid,
  principalId: row.principal_id,
  kind: row.kind,
  deviceType: row.device_type,
  deviceId: row.device_id,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
});

export interface RefreshRow {
  hash: string;
  family_id: string;
  sid: string;
  principal_id: string;
  kind: PrincipalKind;
  device_type: string | null;
  device_id: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** The token that replaced this one when it was presented; null while unused, or when revoked or superseded. */
  replaced_by: string | null;
}

/**
 * The first half of the grace rule (`Store.rotateRefreshToken`): a spent token that its own
 * rotation replaced less than `graceMs` ago. The store then checks its successor is unused.
 */
export const withinRefreshGrace = (row: RefreshRow, now: number, graceMs: number): boolean =>
  graceMs > 0 && row.used_at !== null && row.replaced_by !== null && now - row.used_at < graceMs;

export const toRefresh = (row: RefreshRow): RefreshTokenRecord => ({
  hash: row.hash,
  familyId: row.family_id,
  sid: row.sid,
  principalId: row.principal_id,
  kind: row.kind,
  deviceType: row.device_type,
  deviceId: row.device_id,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  usedAt: row.used_at,
});

export interface TicketRow {
  hash: string;
  principal_id: string;
  kind: PrincipalKind;
  name: string;
  sid: string;
  token_version: number;
  device_type: string | null;
  device_id: string | null;
  token_expires_at: number;
  expires_at: number;
}

export const toTicket = (row: TicketRow): TicketRecord => ({
  hash: row.hash,
  principalId: row.principal_id,
  kind: row.kind,
  name: row.name,
  sid: row.sid,
  tokenVersion: row.token_version,
  deviceType: row.device_type,
  deviceId: row.device_id,
  tokenExpiresAt: row.token_expires_at,
  expiresAt: row.expires_at,
});

export interface ConversationRow {
  id: string;
  kind: ConversationRecord['kind'];
  name: string | null;
  last_seq: number;
  created_at: number;
  customer_id: string | null;
  agent_id: string | null;
  status: ConversationRecord['status'];
  app_key_id: string | null;
  waiting_since: number | null;
}

export const toConversation = (row: ConversationRow): ConversationRecord => ({
  id: row.id,
  kind: row.kind,
  name: row.name,
  lastSeq: row.last_seq,
  createdAt: row.created_at,
  customerId: row.customer_id,
  agentId: row.agent_id,
  status: row.status,
  appKeyId: row.app_key_id,
  waitingSince: row.waiting_since,
});

export interface MessageRow {
  conversation_id: string;
  seq: number;
  id: string;
  from_id: string;
  from_device: string | null;
  client_msg_id: string | null;
  ts: number;
  body: string;
}

export const toMessage = (row: MessageRow): MessageRecord => ({
  id: row.id,
  conversationId: row.conversation_id,
  seq: row.seq,
  fromId: row.from_id,
  ts: row.ts,
  body: row.body,
});

/** A support session joined with its customer and first message, as `listSupport` reads it. */
export type SupportListingRow = ConversationRow & {
  customer_name: string | null;
  channel: unknown;
  first_id: string | null;
  first_from_id: string | null;
  first_ts: number | null;
  first_body: string | null;
};

export const toSupportListing = (row: SupportListingRow): SupportListing => ({
  conversation: toConversation(row),
  customerName: row.customer_name,
  channel: typeof row.channel === 'string' ? row.channel : null,
  firstMessage:
    row.first_id === null
      ? null
      : {
          id: row.first_id,
          conversationId: row.id,
          seq: 1,
          fromId: row.first_from_id as string,
          ts: row.first_ts as number,
          body: row.first_body as string,
        },
});

export interface AppKeyRow {
  id: string;
  name: string;
  key_hash: string;
  created_at: number;
}

export const toAppKey = (row: AppKeyRow): AppKeyRecord => ({
  id: row.id,
  name: row.name,
  keyHash: row.key_hash,
  createdAt: row.created_at,
});
