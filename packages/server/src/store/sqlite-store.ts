import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PrincipalKind } from '@gatehouse/protocol';
import Database from 'better-sqlite3';
import {
  type AppKeyRow,
  type ConversationRow,
  type LoginSessionRow,
  type MessageRow,
  type PrincipalRow,
  type RefreshRow,
  type SupportListingRow,
  type TicketRow,
  toAppKey,
  toConversation,
  toLoginSession,
  toMessage,
  toPrincipal,
  toRefresh,
  toSupportListing,
  toTicket,
  withinRefreshGrace,
} from './rows.js';
import { SqliteCheckpointer } from './sqlite-checkpointer.js';
import type {
  AppendResult,
  AppKeyRecord,
  ConversationRecord,
  ConversationSummary,
  LoginSessionRecord,
  MessageRecord,
  NewMessage,
  PrincipalRecord,
  RefreshTokenRecord,
  RefreshUse,
  RevocationState,
  Store,
  SupportListing,
  TicketRecord,
} from './store.js';
import { WalFrames } from './wal-frames.js';

/**
 * A group belongs to the app that created it; a message records the device type it came
 * from (never replayed to it); a support session enters the queue with the customer's
 * first message (waiting_since); a customer has at most one session not closed.
 * Existing data: a group whose members are all users of one app goes to that app (admin
 * only otherwise); of a customer's sessions not closed, the claimed one, else the newest
 * with messages, else the newest stays, the others are closed.
 */
const SUPPORT_AND_OWNERSHIP = `
   ALTER TABLE conversations ADD COLUMN app_key_id TEXT;
   ALTER TABLE conversations ADD COLUMN waiting_since INTEGER;
   ALTER TABLE messages ADD COLUMN from_device TEXT;
   UPDATE conversations SET app_key_id = (
     SELECT MIN(p.app_key_id) FROM members m JOIN principals p ON p.id = m.principal_id
     WHERE m.conversation_id = conversations.id
     HAVING COUNT(DISTINCT p.app_key_id) = 1 AND COUNT(p.app_key_id) = COUNT(*)
       AND COUNT(*) = (SELECT COUNT(*) FROM members m2 WHERE m2.conversation_id = conversations.id))
   WHERE kind = 'group';
   UPDATE conversations SET waiting_since = (
     SELECT MIN(msg.ts) FROM messages msg
     WHERE msg.conversation_id = conversations.id AND msg.from_id = conversations.customer_id)
   WHERE kind = 'support';
   UPDATE conversations SET status = 'closed'
   WHERE kind = 'support' AND status <> 'closed' AND id <> (
     SELECT k.id FROM conversations k
     WHERE k.kind = 'support' AND k.status <> 'closed' AND k.customer_id = conversations.customer_id
     ORDER BY CASE WHEN k.status = 'claimed' THEN 0 ELSE 1 END, CASE WHEN k.last_seq > 0 THEN 0 ELSE 1 END,
       k.created_at DESC, k.id DESC
     LIMIT 1);
   CREATE UNIQUE INDEX conversations_support_customer ON conversations (customer_id)
     WHERE kind = 'support' AND status <> 'closed';
   CREATE INDEX conversations_support_queue ON conversations (waiting_since, id)
     WHERE kind = 'support' AND status = 'open' AND waiting_since IS NOT NULL;`;

/**
 * Messages move from a WITHOUT ROWID table clustered by (conversation_id, seq) to a rowid
 * table that grows at its end, with (conversation_id, seq) as a unique index. Rows (~400
 * bytes with the body) made the clustered b-tree shallow-fanned and split often, and a group
 * commit touching many conversations dirtied one such leaf per conversation, all written to
 * the WAL per commit; now the rows of a batch share a few pages at the end of the table and
 * only the small index entries are spread (measured: about 40 % fewer WAL page writes).
 */
const MESSAGES_IN_INSERTION_ORDER = `
   CREATE TABLE messages_by_rowid (
     conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, from_id TEXT NOT NULL,
     client_msg_id TEXT, ts INTEGER NOT NULL, body TEXT NOT NULL, from_device TEXT);
   INSERT INTO messages_by_rowid (conversation_id, seq, id, from_id, client_msg_id, ts, body, from_device)
     SELECT conversation_id, seq, id, from_id, client_msg_id, ts, body, from_device FROM messages
     ORDER BY conversation_id, seq;
   DROP TABLE messages;
   ALTER TABLE messages_by_rowid RENAME TO messages;
   CREATE UNIQUE INDEX messages_seq ON messages (conversation_id, seq);
   CREATE UNIQUE INDEX messages_client_msg_id ON messages (conversation_id, from_id, client_msg_id)
     WHERE client_msg_id IS NOT NULL;`;

/** peersOf reads this many rows per peer wanted at once (a peer can repeat) before walking on. */
const PEER_ROWS_READ = 4;

/** Schema versions, applied in order; each runs once, inside a transaction. */
export const MIGRATIONS: string[] = [
  `CREATE TABLE principals (
     id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, password_hash TEXT,
     app_key_id TEXT, avatar TEXT, extras TEXT, token_version INTEGER NOT NULL DEFAULT 0,
     blocked INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_login_at INTEGER);
   CREATE TABLE login_sessions (
     sid TEXT PRIMARY KEY, principal_id TEXT NOT NULL, kind TEXT NOT NULL, device_type TEXT,
     device_id TEXT, created_at INTEGER NOT NULL, revoked_at INTEGER);
   CREATE TABLE refresh_tokens (
     hash TEXT PRIMARY KEY, family_id TEXT NOT NULL, sid TEXT NOT NULL, principal_id TEXT NOT NULL,
     kind TEXT NOT NULL, device_type TEXT, device_id TEXT, created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL, used_at INTEGER);
   CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);
   CREATE TABLE tickets (
     hash TEXT PRIMARY KEY, principal_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
     sid TEXT NOT NULL, token_version INTEGER NOT NULL, device_type TEXT, device_id TEXT,
     token_expires_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
   CREATE TABLE app_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
     created_at INTEGER NOT NULL);
   CREATE TABLE conversations (
     id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, last_seq INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL, customer_id TEXT, agent_id TEXT, status TEXT);
   CREATE INDEX conversations_support ON conversations (kind, status, agent_id);
   CREATE TABLE members (conversation_id TEXT NOT NULL, principal_id TEXT NOT NULL,
     PRIMARY KEY (principal_id, conversation_id)) WITHOUT ROWID;
   CREATE INDEX members_conversation ON members (conversation_id);
   CREATE TABLE messages (
     conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, from_id TEXT NOT NULL,
     client_msg_id TEXT, ts INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
   CREATE UNIQUE INDEX messages_client_msg_id ON messages (conversation_id, from_id, client_msg_id)
     WHERE client_msg_id IS NOT NULL;
   CREATE TABLE cursors (principal_id TEXT NOT NULL, device_type TEXT NOT NULL, conversation_id TEXT NOT NULL,
     seq INTEGER NOT NULL, PRIMARY KEY (principal_id, device_type, conversation_id)) WITHOUT ROWID;`,
  // "Revoke all" (bumpTokenVersion) revokes every session and refresh token of a principal.
  `CREATE INDEX login_sessions_principal ON login_sessions (principal_id);
   CREATE INDEX refresh_tokens_principal ON refresh_tokens (principal_id);`,
  SUPPORT_AND_OWNERSHIP,
  // Which token replaced a spent refresh token: the grace rule of rotateRefreshToken.
  'ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;',
  MESSAGES_IN_INSERTION_ORDER,
];

type SqlitePrincipalRow = PrincipalRow & { extras: string | null; blocked: number };

const principalFrom = (row: SqlitePrincipalRow): PrincipalRecord =>
  toPrincipal(row, row.extras === null ? null : JSON.parse(row.extras), row.blocked === 1);

/** What a batch has read and changed of one conversation's row. */
interface BatchConversation {
  lastSeq: number;
  customerId: string | null;
  waitingSince: number | null;
  changed: boolean;
}

/** `store.sqliteSynchronous`: what an acknowledged write survives (docs/operations.md). */
export type SqliteSynchronous = 'FULL' | 'NORMAL';

export interface SqliteStoreOptions {
  synchronous?: SqliteSynchronous;
  /**
   * WAL checkpoints on a worker thread with its own connection (a file only), so the event
   * loop does not stop to copy pages into the database file and fsync it. Default `false`:
   * on the committing connection, in `upkeep()` once 1000 pages wait (after the acks of the
   * batch that got there) — the thread measured 5-15 % more CPU per stored message in the
   * direct bench (docs/operations.md).
   */
  checkpointThread?: boolean;
  /** Tuning of the thread (tests): see sqlite-checkpoint-thread.ts. */
  checkpointFrames?: number;
  checkpointIdleMs?: number;
  checkpointPollMs?: number;
  /**
   * The bound on the WAL, in pages (default 4000): when neither the thread nor upkeep() has
   * emptied the WAL by then (writes that never pause), the committing connection checkpoints
   * the rest itself, and the WAL starts over.
   */
  walLimitPages?: number;
  /** The thread died: checkpoints are back on the committing connection (nothing is lost). */
  onCheckpointThreadFailure?: (err: Error) => void;
}

/**
 * When a checkpoint is due (SQLite's own default for `wal_autocheckpoint`): the thread's trigger,
 * and upkeep's without it. At WAL_LIMIT_PAGES the committing connection checkpoints inside the
 * commit itself (`wal_autocheckpoint`): the bound on the WAL when neither has kept up.
 */
const CHECKPOINT_PAGES = 1000;
const WAL_LIMIT_PAGES = 4000;

/** SQLite gives `-wal`/`-shm` the database file's mode; this makes sure of it for existing ones. */
function restrictSidecars(file: string): void {
  for (const sidecar of [`${file}-wal`, `${file}-shm`]) if (existsSync(sidecar)) chmodSync(sidecar, 0o600);
}

/**
 * The embedded store: one SQLite file in WAL mode through better-sqlite3. Calls are
 * synchronous underneath, so each method is atomic on its own; the async signatures
 * match the Store contract shared with PostgreSQL.
 */
export class SqliteStore implements Store {
  readonly db: Database.Database;

  /** The checkpoint thread, while there is one. */
  checkpointer: SqliteCheckpointer | null = null;
  /** Without the thread: the WAL's length, read by upkeep() to checkpoint on this connection. */
  private walFrames: WalFrames | null = null;

  constructor(
    readonly file: string,
    options: SqliteStoreOptions = {},
  ) {
    if (file !== ':memory:') {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // The file holds messages and password hashes: owner-only, whatever the umask.
      closeSync(openSync(file, 'a', 0o600));
      chmodSync(file, 0o600);
    }
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // FULL: a commit is fsynced before it returns, so an ack survives power loss and OS crashes
    // (group commit pays one fsync per batch). NORMAL survives a process crash only.
    const synchronous = options.synchronous ?? 'FULL';
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma('busy_timeout = 5000');
    if (file !== ':memory:') restrictSidecars(file);
    this.appendTransaction = this.db.transaction((batch: NewMessage[]) => this.appendBatch(batch));
    if (file === ':memory:') return;
    // The commit's own checkpoint is only the bound: the thread or upkeep() checkpoints before it.
    this.db.pragma(`wal_autocheckpoint = ${options.walLimitPages ?? WAL_LIMIT_PAGES}`);
    if (options.checkpointThread !== true) this.walFrames = new WalFrames(file);
    else
      this.checkpointer = new SqliteCheckpointer({
        file,
        synchronous,
        frames: options.checkpointFrames ?? CHECKPOINT_PAGES,
        idleMs: options.checkpointIdleMs ?? 1000,
        pollMs: options.checkpointPollMs ?? 20,
        onFailure: (err) => {
          this.checkpointer = null;
          if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
          options.onCheckpointThreadFailure?.(err);
        },
      });
  }

  private readonly appendTransaction: Database.Transaction<(batch: NewMessage[]) => AppendResult[]>;

  async migrate(): Promise<void> {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  private probeTable = false;

  async probeWrite(): Promise<void> {
    // Outside the migrations: the table holds one row and nothing else reads it.
    if (!this.probeTable) {
      this.db.exec('CREATE TABLE IF NOT EXISTS readiness_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)');
      this.probeTable = true;
    }
    this.stmt('INSERT INTO readiness_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at').run(
      Date.now(),
    );
  }

  async close(): Promise<void> {
    // The thread's connection closes first, so that this one, the last, checkpoints and removes the WAL.
    await this.checkpointer?.stop();
    this.checkpointer = null;
    this.walFrames?.close();
    this.walFrames = null;
    if (this.db.open) this.db.close();
  }

  /**
   * The WAL checkpoint, when 1000 pages wait, outside any commit: a checkpoint (a few ms of page
   * copies and an fsync of the database file) inside the commit that crossed the line delayed that
   * batch's acks by as much; measured in the direct bench, the ack p99 at 4,000 msg/s went from
   * 7.0-7.8 ms to 3.7-4.2 ms. PASSIVE: it neither waits for nor blocks a reader.
   */
  upkeep(): void {
    const walFrames = this.walFrames;
    if (!walFrames || !this.db.open) return;
    try {
      const wal = walFrames.read();
      if (wal !== null && wal.waiting >= CHECKPOINT_PAGES) this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // Left to the commit that reaches WAL_LIMIT_PAGES (wal_autocheckpoint); upkeep never throws.
    }
  }

  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
  private readonly statements = new Map<string, Database.Statement>();

  /**
   * `sql` with `LIMIT n` written into it. This SQLite is built with STAT4, which prepares a
   * statement again on every run when its LIMIT is a bound parameter (measured: 8-12 µs per
   * call, six times a whole `peersOf`). One statement is kept per distinct n; every caller's
   * limit is bounded (a history page, the replay limit, a constant).
   */
  private limited(sql: string, limit: number): Database.Statement {
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new RangeError(`LIMIT must be a non-negative integer, not ${limit}`);
    return this.stmt(`${sql} LIMIT ${limit}`);
  }

  async getPrincipal(id: string): Promise<PrincipalRecord | null> {
    const row = this.stmt('SELECT * FROM principals WHERE id = ?').get(id) as SqlitePrincipalRow | undefined;
    return row ? principalFrom(row) : null;
  }

  async createPrincipal(p: PrincipalRecord): Promise<boolean> {
    const result = this.stmt(
      `INSERT INTO principals (id, kind, name, password_hash, app_key_id, avatar, extras, token_version,
         blocked, created_at, last_login_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING`,
    ).run(
      p.id,
      p.kind,
      p.name,
      p.passwordHash,
      p.appKeyId,
      p.avatar,
      p.extras === null || p.extras === undefined ? null : JSON.stringify(p.extras),
      p.tokenVersion,
      p.blocked ? 1 : 0,
      p.createdAt,
      p.lastLoginAt,
    );
    return result.changes === 1;
  }

  async upsertAppUser(
    appKeyId: string,
    user: { id: string; name: string; avatar: string | null; extras: unknown },
    now: number,
  ): Promise<PrincipalRecord | 'conflict'> {
    return this.db.transaction((): PrincipalRecord | 'conflict' => {
      const existing = this.stmt('SELECT * FROM principals WHERE id = ?').get(user.id) as
        | SqlitePrincipalRow
        | undefined;
      const extras = user.extras === undefined || user.extras === null ? null : JSON.stringify(user.extras);
      if (existing) {
        if (existing.kind !== 'user' || existing.app_key_id !== appKeyId) return 'conflict';
        this.stmt('UPDATE principals SET name = ?, avatar = ?, extras = ?, last_login_at = ? WHERE id = ?').run(
          user.name,
          user.avatar,
          extras,
          now,
          user.id,
        );
      } else {
        this.stmt(
          `INSERT INTO principals (id, kind, name, app_key_id, avatar, extras, created_at, last_login_at)
           VALUES (?, 'user', ?, ?, ?, ?, ?, ?)`,
        ).run(user.id, user.name, appKeyId, user.avatar, extras, now, now);
      }
      return principalFrom(this.stmt('SELECT * FROM principals WHERE id = ?').get(user.id) as SqlitePrincipalRow);
    })();
  }

  async setLastLogin(id: string, now: number): Promise<void> {
    this.stmt('UPDATE principals SET last_login_at = ? WHERE id = ?').run(now, id);
  }

  async setBlocked(id: string, blocked: boolean): Promise<PrincipalRecord | null> {
    this.stmt('UPDATE principals SET blocked = ? WHERE id = ?').run(blocked ? 1 : 0, id);
    return this.getPrincipal(id);
  }

  async bumpTokenVersion(id: string, now: number): Promise<PrincipalRecord | null> {
    return this.db.transaction(() => {
      this.stmt('UPDATE principals SET token_version = token_version + 1 WHERE id = ?').run(id);
      this.stmt('UPDATE login_sessions SET revoked_at = ? WHERE principal_id = ? AND revoked_at IS NULL').run(now, id);
      this.stmt('UPDATE refresh_tokens SET used_at = ? WHERE principal_id = ? AND used_at IS NULL').run(now, id);
      const row = this.stmt('SELECT * FROM principals WHERE id = ?').get(id) as SqlitePrincipalRow | undefined;
      return row ? principalFrom(row) : null;
    })();
  }

  async countPrincipals(): Promise<Record<PrincipalKind, number>> {
    const counts: Record<PrincipalKind, number> = { user: 0, agent: 0, customer: 0 };
    for (const row of this.stmt('SELECT kind, COUNT(*) AS n FROM principals GROUP BY kind').all() as {
      kind: PrincipalKind;
      n: number;
    }[])
      counts[row.kind] = row.n;
    return counts;
  }

  async createLoginSession(s: LoginSessionRecord): Promise<void> {
    this.stmt(
      `INSERT INTO login_sessions (sid, principal_id, kind, device_type, device_id, created_at, revoked_at)
       VALUES (?,?,?,?,?,?,?)`,
    ).run(s.sid, s.principalId, s.kind, s.deviceType, s.deviceId, s.createdAt, s.revokedAt);
  }

  async getLoginSession(sid: string): Promise<LoginSessionRecord | null> {
    const row = this.stmt('SELECT * FROM login_sessions WHERE sid = ?').get(sid) as LoginSessionRow | undefined;
    return row ? toLoginSession(row) : null;
  }

  async revocationState(principalId: string, sid: string): Promise<RevocationState> {
    const [tokenVersion, blocked, revokedAt] = this.stmt(
      `SELECT p.token_version, p.blocked, s.revoked_at FROM (SELECT 1)
       LEFT JOIN principals p ON p.id = ? LEFT JOIN login_sessions s ON s.sid = ?`,
    )
      .raw()
      .get(principalId, sid) as [number | null, number | null, number | null];
    return {
      principal: tokenVersion === null ? null : { tokenVersion, blocked: blocked === 1 },
      sessionRevoked: revokedAt !== null,
    };
  }

  async revokeLoginSession(sid: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const result = this.stmt('UPDATE login_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE sid = ?').run(
        now,
        sid,
      );
      this.stmt('UPDATE refresh_tokens SET used_at = COALESCE(used_at, ?) WHERE sid = ?').run(now, sid);
      return result.changes === 1;
    })();
  }

  async saveRefreshToken(t: RefreshTokenRecord): Promise<void> {
    this.stmt(
      `INSERT INTO refresh_tokens (hash, family_id, sid, principal_id, kind, device_type, device_id, created_at,
         expires_at, used_at) VALUES (?,?,?,?,?,?,?,?,?,?)`,
    ).run(
      t.hash,
      t.familyId,
      t.sid,
      t.principalId,
      t.kind,
      t.deviceType,
      t.deviceId,
      t.createdAt,
      t.expiresAt,
      t.usedAt,
    );
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenRecord | null> {
    const row = this.stmt('SELECT * FROM refresh_tokens WHERE hash = ?').get(hash) as RefreshRow | undefined;
    return row ? toRefresh(row) : null;
  }

  async rotateRefreshToken(hash: string, successorHash: string, now: number, graceMs: number): Promise<RefreshUse> {
    return this.db
      .transaction((): RefreshUse => {
        const row = this.stmt('SELECT * FROM refresh_tokens WHERE hash = ?').get(hash) as RefreshRow | undefined;
        if (!row) return { status: 'unknown' };
        if (row.used_at === null) {
          if (row.expires_at <= now) return { status: 'expired' };
          this.stmt('UPDATE refresh_tokens SET used_at = ?, replaced_by = ? WHERE hash = ?').run(
            now,
            successorHash,
            hash,
          );
          this.saveSuccessor(row, successorHash, now);
          return { status: 'ok', token: { ...toRefresh(row), usedAt: now } };
        }
        const token = toRefresh(row);
        if (!withinRefreshGrace(row, now, graceMs)) return { status: 'reused', token };
        const superseded = this.stmt(
          'UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?',
        ).run(now, row.replaced_by, now);
        if (superseded.changes !== 1) return { status: 'reused', token };
        this.saveSuccessor(row, successorHash, now);
        return { status: 'grace', token };
      })
      .immediate();
  }

  /** The next token of `spent`'s family: same session, device and expiry. */
  private saveSuccessor(spent: RefreshRow, hash: string, now: number): void {
    this.stmt(
      `INSERT INTO refresh_tokens (hash, family_id, sid, principal_id, kind, device_type, device_id, created_at,
         expires_at, used_at) VALUES (?,?,?,?,?,?,?,?,?,NULL)`,
    ).run(
      hash,
      spent.family_id,
      spent.sid,
      spent.principal_id,
      spent.kind,
      spent.device_type,
      spent.device_id,
      now,
      spent.expires_at,
    );
  }

  async saveTicket(t: TicketRecord): Promise<void> {
    this.stmt('DELETE FROM tickets WHERE expires_at <= ?').run(t.expiresAt - 3_600_000);
    this.stmt(
      `INSERT INTO tickets (hash, principal_id, kind, name, sid, token_version, device_type, device_id,
         token_expires_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)`,
    ).run(
      t.hash,
      t.principalId,
      t.kind,
      t.name,
      t.sid,
      t.tokenVersion,
      t.deviceType,
      t.deviceId,
      t.tokenExpiresAt,
      t.expiresAt,
    );
  }

  async consumeTicket(hash: string, now: number): Promise<TicketRecord | null> {
    const row = this.stmt('DELETE FROM tickets WHERE hash = ? RETURNING *').get(hash) as TicketRow | undefined;
    return row && row.expires_at > now ? toTicket(row) : null;
  }

  async createConversation(c: ConversationRecord, members: string[]): Promise<void> {
    this.db.transaction(() => {
      this.insertConversation(c);
      this.insertMembers(c.id, members);
    })();
  }

  private insertConversation(c: ConversationRecord): void {
    this.stmt(
      `INSERT INTO conversations (id, kind, name, last_seq, created_at, customer_id, agent_id, status, app_key_id,
         waiting_since) VALUES (?,?,?,?,?,?,?,?,?,?)`,
    ).run(c.id, c.kind, c.name, c.lastSeq, c.createdAt, c.customerId, c.agentId, c.status, c.appKeyId, c.waitingSince);
  }

  private insertMembers(conversationId: string, principalIds: string[]): void {
    const insert = this.stmt('INSERT OR IGNORE INTO members (conversation_id, principal_id) VALUES (?, ?)');
    for (const id of principalIds) insert.run(conversationId, id);
  }

  async getConversation(id: string): Promise<ConversationRecord | null> {
    const row = this.stmt('SELECT * FROM conversations WHERE id = ?').get(id) as ConversationRow | undefined;
    return row ? toConversation(row) : null;
  }

  async members(conversationId: string): Promise<string[]> {
    return (
      this.stmt('SELECT principal_id FROM members WHERE conversation_id = ? ORDER BY principal_id').all(
        conversationId,
      ) as { principal_id: string }[]
    ).map((r) => r.principal_id);
  }

  async addMembers(conversationId: string, principalIds: string[]): Promise<void> {
    this.db.transaction(() => this.insertMembers(conversationId, principalIds))();
  }

  async removeMember(conversationId: string, principalId: string): Promise<boolean> {
    return (
      this.stmt('DELETE FROM members WHERE conversation_id = ? AND principal_id = ?').run(conversationId, principalId)
        .changes === 1
    );
  }

  async appendMessages(batch: NewMessage[]): Promise<AppendResult[]> {
    if (batch.length === 0) return [];
    // IMMEDIATE: the write lock is taken before the seqs are read, so another handle on the file
    // cannot commit in between (a deferred transaction would fail with SQLITE_BUSY_SNAPSHOT).
    return this.appendTransaction.immediate(batch);
  }

  /**
   * One transaction per batch: each conversation's seq, customer and waiting_since are read
   * once, each message is one INSERT (the unique index on client_msg_id turns a repeat into
   * no change, and only then is the original read), and each conversation's row is written
   * once at the end. A seq already taken (it cannot be: the write lock is held from the read
   * on) would fail the unique index on (conversation_id, seq) and with it the whole batch.
   */
  private appendBatch(batch: NewMessage[]): AppendResult[] {
    const conversations = new Map<string, BatchConversation>();
    const results: AppendResult[] = [];
    const insert = this.stmt(
      `INSERT INTO messages (conversation_id, seq, id, from_id, from_device, client_msg_id, ts, body)
       VALUES (?,?,?,?,?,?,?,?)
       ON CONFLICT (conversation_id, from_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING`,
    );
    for (const m of batch) {
      if (m.createDirect) this.createDirect(m.conversationId, m.ts, m.createDirect.members);
      let conversation = conversations.get(m.conversationId);
      if (!conversation) {
        const row = this.stmt('SELECT last_seq, customer_id, waiting_since FROM conversations WHERE id = ?').get(
          m.conversationId,
        ) as { last_seq: number; customer_id: string | null; waiting_since: number | null } | undefined;
        if (!row) throw new Error(`conversation ${m.conversationId} does not exist`);
        conversation = {
          lastSeq: row.last_seq,
          customerId: row.customer_id,
          waitingSince: row.waiting_since,
          changed: false,
        };
        conversations.set(m.conversationId, conversation);
      }
      const seq = conversation.lastSeq + 1;
      const body = m.serialize(seq);
      const stored =
        insert.run(m.conversationId, seq, m.id, m.fromId, m.fromDevice, m.clientMsgId, m.ts, body).changes === 1;
      if (!stored) {
        const original = this.stmt(
          'SELECT * FROM messages WHERE conversation_id = ? AND from_id = ? AND client_msg_id = ?',
        ).get(m.conversationId, m.fromId, m.clientMsgId) as MessageRow;
        results.push({ record: toMessage(original), duplicate: true });
        continue;
      }
      conversation.lastSeq = seq;
      conversation.changed = true;
      // A support session's customer writing for the first time puts it in the queue.
      if (conversation.waitingSince === null && conversation.customerId === m.fromId) conversation.waitingSince = m.ts;
      results.push({
        record: { id: m.id, conversationId: m.conversationId, seq, fromId: m.fromId, ts: m.ts, body },
        duplicate: false,
      });
    }
    const update = this.stmt('UPDATE conversations SET last_seq = ?, waiting_since = ? WHERE id = ?');
    for (const [id, c] of conversations) if (c.changed) update.run(c.lastSeq, c.waitingSince, id);
    return results;
  }

  private createDirect(conversationId: string, ts: number, members: string[]): void {
    this.stmt(`INSERT OR IGNORE INTO conversations (id, kind, last_seq, created_at) VALUES (?, 'direct', 0, ?)`).run(
      conversationId,
      ts,
    );
    this.insertMembers(conversationId, members);
  }

  async messagesAfter(
    conversationId: string,
    afterSeq: number,
    limit: number,
    exclude?: { fromId: string; fromDevice: string },
  ): Promise<MessageRecord[]> {
    const rows = (
      exclude
        ? this.limited(
            `SELECT * FROM messages WHERE conversation_id = ? AND seq > ? AND (from_id <> ? OR from_device IS NOT ?)
             ORDER BY seq DESC`,
            limit,
          ).all(conversationId, afterSeq, exclude.fromId, exclude.fromDevice)
        : this.limited('SELECT * FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq DESC', limit).all(
            conversationId,
            afterSeq,
          )
    ) as MessageRow[];
    return rows.reverse().map(toMessage);
  }

  async messagesBefore(conversationId: string, beforeSeq: number | null, limit: number): Promise<MessageRecord[]> {
    const rows = this.limited(
      'SELECT * FROM messages WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC',
      limit,
    ).all(conversationId, beforeSeq ?? Number.MAX_SAFE_INTEGER) as MessageRow[];
    return rows.reverse().map(toMessage);
  }

  async replayCursors(
    principalId: string,
    deviceType: string,
  ): Promise<{ conversationId: string; cursor: number; lastSeq: number }[]> {
    return this.stmt(
      `SELECT c.id AS conversationId, COALESCE(cur.seq, 0) AS cursor, c.last_seq AS lastSeq
       FROM members m JOIN conversations c ON c.id = m.conversation_id
       LEFT JOIN cursors cur ON cur.principal_id = m.principal_id AND cur.device_type = ? AND cur.conversation_id = c.id
       WHERE m.principal_id = ? AND c.last_seq > COALESCE(cur.seq, 0) ORDER BY c.id`,
    ).all(deviceType, principalId) as { conversationId: string; cursor: number; lastSeq: number }[];
  }

  async advanceCursor(principalId: string, deviceType: string, conversationId: string, seq: number): Promise<void> {
    this.stmt(
      `INSERT INTO cursors (principal_id, device_type, conversation_id, seq) VALUES (?,?,?,?)
       ON CONFLICT (principal_id, device_type, conversation_id) DO UPDATE SET seq = MAX(seq, excluded.seq)`,
    ).run(principalId, deviceType, conversationId, seq);
  }

  async peersOf(principalId: string, limit: number): Promise<string[]> {
    // Deduplicated here, not with DISTINCT (a temporary b-tree on every call): this runs on every
    // authentication, for most principals with no row at all. A peer can come back more
    // than once (several support sessions with one agent), so up to PEER_ROWS_READ × limit rows
    // are read at once; only when that many came back is the rest walked row by row until
    // `limit` distinct peers are found (an iterator costs more than the read on most calls).
    const sql = `SELECT other.principal_id FROM members mine
       JOIN conversations c ON c.id = mine.conversation_id
       JOIN members other ON other.conversation_id = mine.conversation_id
       WHERE mine.principal_id = ? AND (c.kind = 'direct' OR c.kind = 'support') AND other.principal_id != mine.principal_id`;
    const cap = limit * PEER_ROWS_READ;
    const rows = this.limited(sql, cap).pluck().all(principalId) as string[];
    const peers = new Set<string>();
    for (const id of rows) {
      peers.add(id);
      if (peers.size >= limit) return [...peers];
    }
    if (rows.length < cap) return [...peers];
    for (const id of this.stmt(sql).pluck().iterate(principalId) as IterableIterator<string>) {
      peers.add(id);
      if (peers.size >= limit) break;
    }
    return [...peers];
  }

  async conversationsOf(principalId: string, deviceType: string): Promise<ConversationSummary[]> {
    const rows = this.stmt(
      `SELECT c.*, COALESCE(cur.seq, 0) AS cursor,
         (SELECT COUNT(*) FROM messages msg WHERE msg.conversation_id = c.id AND msg.seq > COALESCE(cur.seq, 0)
            AND msg.from_id != m.principal_id) AS unread
       FROM members m JOIN conversations c ON c.id = m.conversation_id
       LEFT JOIN cursors cur ON cur.principal_id = m.principal_id AND cur.device_type = ? AND cur.conversation_id = c.id
       WHERE m.principal_id = ? ORDER BY c.created_at DESC`,
    ).all(deviceType, principalId) as (ConversationRow & { cursor: number; unread: number })[];
    return rows.map((row) => ({ conversation: toConversation(row), cursor: row.cursor, unread: row.unread }));
  }

  async claimSupport(conversationId: string, agentId: string): Promise<'ok' | 'taken' | 'not_found' | 'closed'> {
    return this.db.transaction(() => {
      const row = this.stmt("SELECT * FROM conversations WHERE id = ? AND kind = 'support'").get(conversationId) as
        | ConversationRow
        | undefined;
      if (!row) return 'not_found' as const;
      if (row.status === 'closed') return 'closed' as const;
      if (row.agent_id !== null && row.agent_id !== agentId) return 'taken' as const;
      this.stmt("UPDATE conversations SET agent_id = ?, status = 'claimed' WHERE id = ?").run(agentId, conversationId);
      this.insertMembers(conversationId, [agentId]);
      return 'ok' as const;
    })();
  }

  async closeSupport(conversationId: string): Promise<void> {
    this.stmt("UPDATE conversations SET status = 'closed' WHERE id = ?").run(conversationId);
  }

  async openSupportSession(
    session: ConversationRecord,
  ): Promise<{ conversation: ConversationRecord; created: boolean }> {
    // IMMEDIATE: another handle on the file cannot slip its own session in between the check and the insert.
    return this.db
      .transaction(() => {
        const existing = this.stmt(
          "SELECT * FROM conversations WHERE customer_id = ? AND kind = 'support' AND status <> 'closed'",
        ).get(session.customerId) as ConversationRow | undefined;
        if (existing) return { conversation: toConversation(existing), created: false };
        this.insertConversation(session);
        this.insertMembers(session.id, [session.customerId as string]);
        return { conversation: session, created: true };
      })
      .immediate();
  }

  async listSupport(status: 'open' | 'mine', agentId: string, limit: number): Promise<SupportListing[]> {
    const select = `SELECT c.*, p.name AS customer_name,
        CASE WHEN json_valid(p.extras) AND json_type(p.extras, '$.channel') = 'text'
          THEN json_extract(p.extras, '$.channel') END AS channel,
        f.id AS first_id, f.from_id AS first_from_id, f.ts AS first_ts, f.body AS first_body
      FROM conversations c
      LEFT JOIN principals p ON p.id = c.customer_id
      LEFT JOIN messages f ON f.conversation_id = c.id AND f.seq = 1`;
    const rows =
      status === 'open'
        ? this.limited(
            `${select} WHERE c.kind = 'support' AND c.status = 'open' AND c.waiting_since IS NOT NULL
             ORDER BY c.waiting_since, c.id`,
            limit,
          ).all()
        : this.limited(
            `${select} WHERE c.kind = 'support' AND c.status = 'claimed' AND c.agent_id = ?
             ORDER BY c.created_at, c.id`,
            limit,
          ).all(agentId);
    return (rows as SupportListingRow[]).map(toSupportListing);
  }

  async createAppKey(k: AppKeyRecord): Promise<void> {
    this.stmt('INSERT INTO app_keys (id, name, key_hash, created_at) VALUES (?,?,?,?)').run(
      k.id,
      k.name,
      k.keyHash,
      k.createdAt,
    );
  }

  async findAppKey(keyHash: string): Promise<AppKeyRecord | null> {
    const row = this.stmt('SELECT * FROM app_keys WHERE key_hash = ?').get(keyHash) as AppKeyRow | undefined;
    return row ? toAppKey(row) : null;
  }

  async listAppKeys(): Promise<AppKeyRecord[]> {
    return (this.stmt('SELECT * FROM app_keys ORDER BY created_at').all() as AppKeyRow[]).map(toAppKey);
  }
}
