import type { PrincipalKind } from '@gatehouse/protocol';

/** A person or visitor that can hold tokens. `id` is unique across kinds. */
export interface PrincipalRecord {
  id: string;
  kind: PrincipalKind;
  name: string;
  /** Argon2id PHC string; null for principals that never log in with a password. */
  passwordHash: string | null;
  /** The app that created this `user` (open API), or null. */
  appKeyId: string | null;
  avatar: string | null;
  /** Free-form JSON from the app (`extras`) or the customer endpoint (`metadata`). */
  extras: unknown;
  /** Bumped by "revoke all": tokens carrying an older `ver` are refused. */
  tokenVersion: number;
  blocked: boolean;
  createdAt: number;
  lastLoginAt: number | null;
}

export interface LoginSessionRecord {
  sid: string;
  principalId: string;
  kind: PrincipalKind;
  deviceType: string | null;
  deviceId: string | null;
  createdAt: number;
  revokedAt: number | null;
}

export interface RefreshTokenRecord {
  /** SHA-256 of the opaque token; the token itself is never stored. */
  hash: string;
  familyId: string;
  sid: string;
  principalId: string;
  kind: PrincipalKind;
  deviceType: string | null;
  deviceId: string | null;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface TicketRecord {
  hash: string;
  principalId: string;
  kind: PrincipalKind;
  name: string;
  sid: string;
  tokenVersion: number;
  deviceType: string | null;
  deviceId: string | null;
  /** When the access token the ticket was made from expires; the connection inherits it. */
  tokenExpiresAt: number;
  expiresAt: number;
}

export interface AppKeyRecord {
  id: string;
  name: string;
  /** SHA-256 of the key. */
  keyHash: string;
  createdAt: number;
}

export type ConversationKind = 'direct' | 'group' | 'support';
/** Support sessions: `open` waits for an agent, `claimed` has one, `closed` takes no messages. */
export type SupportStatus = 'open' | 'claimed' | 'closed';

export interface ConversationRecord {
  id: string;
  kind: ConversationKind;
  name: string | null;
  /** Highest seq stored (0 when empty). */
  lastSeq: number;
  createdAt: number;
  /** Support only: the customer, the claiming agent and the status. */
  customerId: string | null;
  agentId: string | null;
  status: SupportStatus | null;
  /**
   * The app that created it (groups made with an app key), fixed at creation: only that app
   * (or the admin) manages the group, whoever its members are later. Null: admin-made or not a group.
   */
  appKeyId: string | null;
  /**
   * Support only: when the customer first wrote (the `ts` of its first message), set by the
   * store with that message. A session is in the agents' queue once this is set; null before.
   */
  waitingSince: number | null;
}

/** A stored message. `body` is the serialized wire object, so delivery and replay never re-serialize. */
export interface MessageRecord {
  id: string;
  conversationId: string;
  seq: number;
  fromId: string;
  ts: number;
  body: string;
}

export interface NewMessage {
  id: string;
  conversationId: string;
  fromId: string;
  /**
   * The sender's device type (null when not sent from a device). A message is never replayed
   * to the device type that sent it (see `messagesAfter`'s `exclude`).
   */
  fromDevice: string | null;
  clientMsgId: string | null;
  ts: number;
  /** Builds the wire object for the seq the store assigns. */
  serialize(seq: number): string;
  /** A direct conversation to create (with these two members) if it does not exist yet. */
  createDirect?: { members: [string, string] };
}

export type AppendResult = { record: MessageRecord; duplicate: boolean };

export interface ConversationSummary {
  conversation: ConversationRecord;
  /** Delivered-up-to seq of the asking (principal, device type). */
  cursor: number;
  /** Messages above the cursor that others sent. */
  unread: number;
}

/** A support session as the agents' lists show it. */
export interface SupportListing {
  conversation: ConversationRecord;
  /** The customer's display name (null if the principal is gone). */
  customerName: string | null;
  /** The customer's `channel` (kept in its extras), when it is a string. */
  channel: string | null;
  /** The session's first message (seq 1), null while it has none. */
  firstMessage: MessageRecord | null;
}

/**
 * What presenting a refresh token came to. `token` is the presented one (`usedAt`: when it was
 * first spent). 'grace': it was spent moments ago and its successor never used, so the caller
 * answers again for the same session (see `rotateRefreshToken`).
 */
export type RefreshUse =
  | { status: 'ok' | 'grace' | 'reused'; token: RefreshTokenRecord }
  | { status: 'expired' | 'unknown' };

/**
 * Durable state. Every method either completes and is durable, or rejects; none
 * half-applies. Implementations: SqliteStore (embedded default), PostgresStore (scale-out).
 */
/** Store.revocationState's answer: principal null when the store does not know it. */
export interface RevocationState {
  principal: { tokenVersion: number; blocked: boolean } | null;
  sessionRevoked: boolean;
}

export interface Store {
  /** Creates or upgrades the schema; safe to call on every start. */
  migrate(): Promise<void>;
  /** Resolves when the store answers a trivial query (for /readyz). */
  ping(): Promise<void>;
  /**
   * Writes and commits one tiny row (for /readyz): rejects when the store cannot write —
   * a full disk, a read-only file or database, a lost primary — even while reads work.
   */
  probeWrite(): Promise<void>;
  close(): Promise<void>;

  getPrincipal(id: string): Promise<PrincipalRecord | null>;
  /** Inserts; resolves false (and changes nothing) when the id is taken. */
  createPrincipal(principal: PrincipalRecord): Promise<boolean>;
  /**
   * Creates or updates an app's `user` atomically; 'conflict' when the id belongs to
   * another app or another kind of principal.
   */
  upsertAppUser(
    appKeyId: string,
    user: { id: string; name: string; avatar: string | null; extras: unknown },
    now: number,
  ): Promise<PrincipalRecord | 'conflict'>;
  setLastLogin(id: string, now: number): Promise<void>;
  setBlocked(id: string, blocked: boolean): Promise<PrincipalRecord | null>;
  /**
   * Increments the token version and, in the same transaction, revokes every login session
   * of the principal and marks their refresh tokens used: every token issued before —
   * access and refresh — is refused from then on.
   */
  bumpTokenVersion(id: string, now: number): Promise<PrincipalRecord | null>;
  countPrincipals(): Promise<Record<PrincipalKind, number>>;

  createLoginSession(session: LoginSessionRecord): Promise<void>;
  getLoginSession(sid: string): Promise<LoginSessionRecord | null>;
  /**
   * What verifying an access token needs from the store, in one read: the principal's token
   * version and blocked flag (null when the store does not know it) and whether the login
   * session is revoked (false when unknown).
   */
  revocationState(principalId: string, sid: string): Promise<RevocationState>;
  /** Marks the session revoked and every refresh token of it used; false if unknown. */
  revokeLoginSession(sid: string, now: number): Promise<boolean>;

  saveRefreshToken(token: RefreshTokenRecord): Promise<void>;
  /** The stored token with this hash, used or not, without changing it; null if unknown. */
  getRefreshToken(hash: string): Promise<RefreshTokenRecord | null>;
  /**
   * Spends the token and, in the same transaction, saves its successor `successorHash` (same
   * family, session, device and expiry; created `now`) and records which token replaced it.
   * Of concurrent uses exactly one gets 'ok'.
   *
   * A token already spent gets 'grace' only when all hold: it was spent by this rotation (not by
   * a revocation, not replaced by a grace answer) less than `graceMs` before `now`, and its
   * successor is still unused and unexpired. Then that successor is marked used (it was lost on
   * the way, or stolen: nobody may use it any more) and `successorHash` is saved in its place,
   * so the session keeps one live refresh token. The link of the presented token is left as it
   * was, so a second grace use of it finds its successor used: 'reused'. Anything else spent
   * gets 'reused' (the caller revokes the session). `graceMs` 0: never 'grace'.
   */
  rotateRefreshToken(hash: string, successorHash: string, now: number, graceMs: number): Promise<RefreshUse>;

  saveTicket(ticket: TicketRecord): Promise<void>;
  /** Deletes and returns the ticket if it exists and has not expired; atomic single use. */
  consumeTicket(hash: string, now: number): Promise<TicketRecord | null>;

  createConversation(conversation: ConversationRecord, members: string[]): Promise<void>;
  getConversation(id: string): Promise<ConversationRecord | null>;
  members(conversationId: string): Promise<string[]>;
  addMembers(conversationId: string, principalIds: string[]): Promise<void>;
  removeMember(conversationId: string, principalId: string): Promise<boolean>;
  /**
   * Stores a batch in one transaction (group commit): each message gets the next seq of
   * its conversation, with no gaps. A message whose (conversation, sender, clientMsgId)
   * was stored before is not stored again; its original record comes back with
   * `duplicate: true`. Rejects as a whole: then nothing of the batch is stored. The first
   * message a support session's customer stores sets the session's `waitingSince` to its `ts`.
   */
  appendMessages(batch: NewMessage[]): Promise<AppendResult[]>;

  /**
   * Upkeep the group commit runs once a batch's acks have been written, so that it never sits
   * between a commit and its acks, and the node once a second (SQLite: the WAL checkpoint when
   * it is due). Optional; never throws.
   */
  upkeep?(): void;
  /**
   * Messages with seq > afterSeq, oldest first; at most `limit`, the newest ones if more.
   * With `exclude`, the messages that principal sent from that device type are left out (the
   * limit counts the others only): the offline replay of a device type skips its own sends.
   */
  messagesAfter(
    conversationId: string,
    afterSeq: number,
    limit: number,
    exclude?: { fromId: string; fromDevice: string },
  ): Promise<MessageRecord[]>;
  /** Messages with seq < beforeSeq (all when null), newest `limit` of them, oldest first. */
  messagesBefore(conversationId: string, beforeSeq: number | null, limit: number): Promise<MessageRecord[]>;
  /**
   * Conversations of a principal with messages above the cursor of a device type (own sends
   * included: the replay filters them with `messagesAfter`'s `exclude`, then moves the cursor
   * past a leading run of them with `advanceCursor`).
   */
  replayCursors(
    principalId: string,
    deviceType: string,
  ): Promise<{ conversationId: string; cursor: number; lastSeq: number }[]>;
  /** Moves a delivery cursor forward (never back). */
  advanceCursor(principalId: string, deviceType: string, conversationId: string, seq: number): Promise<void>;
  /** Who shares a direct conversation or support session with the principal (presence goes to them). */
  peersOf(principalId: string, limit: number): Promise<string[]>;
  /**
   * Conversations of a principal with the cursor and unread count of a device type. Unread
   * counts the messages above the cursor that others sent (never the principal's own, from any
   * device type).
   */
  conversationsOf(principalId: string, deviceType: string): Promise<ConversationSummary[]>;
  /** Atomic: 'ok' when the agent got (or already had) the session, 'taken' when another agent has it. */
  claimSupport(conversationId: string, agentId: string): Promise<'ok' | 'taken' | 'not_found' | 'closed'>;
  closeSupport(conversationId: string): Promise<void>;
  /**
   * A customer has at most one support session that is not closed. Atomic, also across nodes:
   * returns that session (`created: false`) when there is one, else stores `session` (a
   * `support` record with status `open` and the customer as its only member) and returns it.
   */
  openSupportSession(session: ConversationRecord): Promise<{ conversation: ConversationRecord; created: boolean }>;
  /**
   * The agents' lists, not closed: `open` is the queue, unclaimed sessions in which the customer
   * has written (`waitingSince` set), longest waiting first; `mine` the sessions claimed by
   * `agentId`, oldest first. At most `limit`.
   */
  listSupport(status: 'open' | 'mine', agentId: string, limit: number): Promise<SupportListing[]>;

  createAppKey(key: AppKeyRecord): Promise<void>;
  findAppKey(keyHash: string): Promise<AppKeyRecord | null>;
  listAppKeys(): Promise<AppKeyRecord[]>;
}
