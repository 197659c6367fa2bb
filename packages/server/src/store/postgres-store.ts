import type { PrincipalKind } from '@gatehouse/protocol';
import pg from 'pg';
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
} from './rows.js';
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

/**
 * Schema versions, applied in order; each runs once, recorded in `schema_migrations`.
 * Identifiers use the "C" collation so ORDER BY sorts by bytes, as SQLite does.
 */
export const MIGRATIONS: string[] = [
  `CREATE TABLE principals (
     id TEXT COLLATE "C" PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, password_hash TEXT,
     app_key_id TEXT COLLATE "C", avatar TEXT, extras JSONB, token_version INTEGER NOT NULL DEFAULT 0,
     blocked BOOLEAN NOT NULL DEFAULT FALSE, created_at BIGINT NOT NULL, last_login_at BIGINT);
   CREATE TABLE login_sessions (
     sid TEXT COLLATE "C" PRIMARY KEY, principal_id TEXT COLLATE "C" NOT NULL, kind TEXT NOT NULL, device_type TEXT,
     device_id TEXT, created_at BIGINT NOT NULL, revoked_at BIGINT);
   CREATE TABLE refresh_tokens (
     hash TEXT COLLATE "C" PRIMARY KEY, family_id TEXT COLLATE "C" NOT NULL, sid TEXT COLLATE "C" NOT NULL,
     principal_id TEXT COLLATE "C" NOT NULL, kind TEXT NOT NULL, device_type TEXT, device_id TEXT,
     created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT);
   CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);
   CREATE TABLE tickets (
     hash TEXT COLLATE "C" PRIMARY KEY, principal_id TEXT COLLATE "C" NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
     sid TEXT COLLATE "C" NOT NULL, token_version INTEGER NOT NULL, device_type TEXT, device_id TEXT,
     token_expires_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
   CREATE INDEX tickets_expires_at ON tickets (expires_at);
   CREATE TABLE app_keys (
     id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
     created_at BIGINT NOT NULL);
   CREATE TABLE conversations (
     id TEXT COLLATE "C" PRIMARY KEY, kind TEXT NOT NULL, name TEXT, last_seq BIGINT NOT NULL DEFAULT 0,
     created_at BIGINT NOT NULL, customer_id TEXT COLLATE "C", agent_id TEXT COLLATE "C", status TEXT);
   CREATE INDEX conversations_support ON conversations (status, agent_id, created_at) WHERE kind = 'support';
   CREATE TABLE members (
     conversation_id TEXT COLLATE "C" NOT NULL, principal_id TEXT COLLATE "C" NOT NULL,
     PRIMARY KEY (principal_id, conversation_id));
   CREATE INDEX members_conversation ON members (conversation_id);
   CREATE TABLE messages (
     conversation_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL,
     from_id TEXT COLLATE "C" NOT NULL, client_msg_id TEXT COLLATE "C", ts BIGINT NOT NULL, body TEXT NOT NULL,
     PRIMARY KEY (conversation_id, seq));
   CREATE UNIQUE INDEX messages_client_msg_id ON messages (conversation_id, from_id, client_msg_id)
     WHERE client_msg_id IS NOT NULL;
   CREATE TABLE cursors (
     principal_id TEXT COLLATE "C" NOT NULL, device_type TEXT COLLATE "C" NOT NULL,
     conversation_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL,
     PRIMARY KEY (principal_id, device_type, conversation_id));`,
  // "Revoke all" (bumpTokenVersion) revokes every session and refresh token of a principal.
  `CREATE INDEX login_sessions_principal ON login_sessions (principal_id);
   CREATE INDEX refresh_tokens_principal ON refresh_tokens (principal_id);`,
  // As SQLite's third migration: group owners, the sending device type, the support queue and
  // one session not closed per customer (existing duplicates closed, the claimed or newest kept).
  `ALTER TABLE conversations ADD COLUMN app_key_id TEXT COLLATE "C";
   ALTER TABLE conversations ADD COLUMN waiting_since BIGINT;
   ALTER TABLE messages ADD COLUMN from_device TEXT COLLATE "C";
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
     WHERE kind = 'support' AND status = 'open' AND waiting_since IS NOT NULL;`,
  // Which token replaced a spent refresh token: the grace rule of rotateRefreshToken.
  'ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT COLLATE "C";',
];

/** Key of the transaction-scoped advisory lock that serializes migrations of concurrent starts. */
const MIGRATION_LOCK = 0x6761_7465_686f_7573n; // "gatehous"

/** Error codes after which a whole transaction is safely retried: nothing of it was applied. */
const RETRYABLE = new Set(['40001', '40P01']);
/** The unique index a concurrent append of the same client_msg_id trips over (the retry then finds it). */
const CLIENT_MSG_ID_INDEX = 'messages_client_msg_id';
const MAX_ATTEMPTS = 5;

/** BIGINT columns (times, seq, counts) come back as JS numbers; all fit in 2^53. */
const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

type Queryable = Pick<pg.PoolClient, 'query'>;

/** The next token of a spent one's family: same session, device and expiry ($2 hash, $3 now). */
const INSERT_SUCCESSOR = `INSERT INTO refresh_tokens (hash, family_id, sid, principal_id, kind, device_type, device_id,
    created_at, expires_at, used_at)
  SELECT $2, family_id, sid, principal_id, kind, device_type, device_id, $3, expires_at, NULL`;

/** Spends an unused, unexpired token ($1) and saves its successor ($2) in one statement. */
const ROTATE_REFRESH = `WITH spent AS (
    UPDATE refresh_tokens SET used_at = $3, replaced_by = $2
    WHERE hash = $1 AND used_at IS NULL AND expires_at > $3 RETURNING *),
  successor AS (${INSERT_SUCCESSOR} FROM spent)
  SELECT * FROM spent`;

/**
 * The grace rule (Store.rotateRefreshToken, rows.ts withinRefreshGrace): a token ($1) its own
 * rotation replaced less than $4 ms ago, whose successor is still unused and unexpired: that
 * successor is marked used and $2 saved in its place. Returns the presented token, or nothing.
 */
const GRACE_REFRESH = `WITH presented AS (
    SELECT * FROM refresh_tokens
    WHERE hash = $1 AND used_at IS NOT NULL AND replaced_by IS NOT NULL AND $3::bigint - used_at < $4::bigint),
  superseded AS (
    UPDATE refresh_tokens s SET used_at = $3 FROM presented p
    WHERE s.hash = p.replaced_by AND s.used_at IS NULL AND s.expires_at > $3
    RETURNING p.*),
  successor AS (${INSERT_SUCCESSOR} FROM superseded)
  SELECT * FROM superseded`;

const INSERT_CONVERSATION = `INSERT INTO conversations (id, kind, name, last_seq, created_at, customer_id, agent_id,
  status, app_key_id, waiting_since) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`;
const conversationValues = (c: ConversationRecord) => [
  c.id,
  c.kind,
  c.name,
  c.lastSeq,
  c.createdAt,
  c.customerId,
  c.agentId,
  c.status,
  c.appKeyId,
  c.waitingSince,
];

type PgPrincipalRow = PrincipalRow & { extras: unknown; blocked: boolean };

const principalFrom = (row: PgPrincipalRow): PrincipalRecord => toPrincipal(row, row.extras ?? null, row.blocked);

/** JSONB parameter: SQL NULL for null/undefined, else the JSON text (pg would turn arrays into SQL arrays). */
const jsonParam = (value: unknown): string | null =>
  value === null || value === undefined ? null : JSON.stringify(value);

const dedupKey = (conversationId: string, fromId: string, clientMsgId: string): string =>
  `${conversationId}\u0000${fromId}\u0000${clientMsgId}`;

function isRetryable(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError) || !err.code) return false;
  return RETRYABLE.has(err.code) || (err.code === '23505' && err.constraint === CLIENT_MSG_ID_INDEX);
}

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections this node holds at most. */
  poolSize?: number;
  /** How long to wait for a new connection before the call rejects. */
  connectTimeoutMs?: number;
  /**
   * How long a statement may go unanswered before the call rejects (a database behind a
   * dead network never answers); the connection is then discarded.
   */
  queryTimeoutMs?: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** Connection errors outside any call (an idle connection dropped); the pool replaces the connection. */
  onError?: (err: Error) => void;
}

/**
 * The scale-out store: PostgreSQL through a `pg.Pool`. Several nodes share one database,
 * so every method is one statement or one transaction whose row locks make it atomic
 * across processes. A lost connection rejects the call in progress (its transaction is
 * rolled back by the server) and the pool opens a fresh one for the next call.
 */
export class PostgresStore implements Store {
  readonly pool: pg.Pool;
  private closed = false;

  /** Connection settings without the query timeout, for migrations (one may rewrite a large table). */
  private readonly migrationConfig: pg.ClientConfig;

  constructor(options: PostgresStoreOptions) {
    this.migrationConfig = {
      connectionString: options.url,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      application_name: options.applicationName ?? 'gatehouse',
      types,
    };
    this.pool = new pg.Pool({
      ...this.migrationConfig,
      max: options.poolSize ?? 10,
      query_timeout: options.queryTimeoutMs ?? 15_000,
      keepAlive: true,
    });
    // Without a listener an idle connection's error (server restart, pg_terminate_backend) would crash the process.
    const onError = options.onError ?? (() => {});
    this.pool.on('error', (err) => onError(err));
  }

  /**
   * Runs `fn` in one transaction on one connection. Any failure rolls back; a connection
   * that broke is discarded rather than returned to the pool. Deadlocks, serialization
   * failures and a lost client_msg_id race are retried from the start (nothing was applied).
   */
  private async transaction<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      const onError = (err: Error) => {
        broken = err;
      };
      // A checked-out client emits 'error' when its connection dies; unheard, that would crash the process.
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (!broken)
          await client.query('ROLLBACK').catch((rollbackError: Error) => {
            broken = rollbackError;
          });
        if (attempt >= MAX_ATTEMPTS || broken || !isRetryable(err)) throw err;
      } finally {
        client.removeListener('error', onError);
        client.release(broken);
      }
    }
  }

  private async rows<R>(sql: string, values: unknown[] = [], db: Queryable = this.pool): Promise<R[]> {
    return (await db.query(sql, values)).rows as R[];
  }

  private async row<R>(sql: string, values: unknown[] = [], db: Queryable = this.pool): Promise<R | null> {
    return ((await db.query(sql, values)).rows[0] as R | undefined) ?? null;
  }

  async migrate(): Promise<void> {
    const client = new pg.Client(this.migrationConfig);
    client.on('error', () => {}); // a lost connection also fails the query in progress, which rejects below
    await client.connect();
    try {
      await client.query('BEGIN');
      // Nodes starting together wait here; the first applies the migrations, the others then find them done.
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)',
      );
      const applied = new Set(
        (await this.rows<{ version: number }>('SELECT version FROM schema_migrations', [], client)).map(
          (r) => r.version,
        ),
      );
      for (const [index, sql] of MIGRATIONS.entries()) {
        const version = index + 1;
        if (applied.has(version)) continue;
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [
          version,
          Date.now(),
        ]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      await client.end().catch(() => {});
    }
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  private probeTable = false;

  async probeWrite(): Promise<void> {
    // Outside the migrations: the table holds one row and nothing else reads it.
    if (!this.probeTable) {
      await this.pool
        .query('CREATE TABLE IF NOT EXISTS gh_readiness_probe (id INTEGER PRIMARY KEY, at TIMESTAMPTZ NOT NULL)')
        .catch((err: { code?: string }) => {
          // Two nodes creating it at once: one of them loses the race on the catalog.
          if (err.code !== '23505' && err.code !== '42P07') throw err;
        });
      this.probeTable = true;
    }
    await this.pool.query(
      'INSERT INTO gh_readiness_probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()',
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async getPrincipal(id: string): Promise<PrincipalRecord | null> {
    const row = await this.row<PgPrincipalRow>('SELECT * FROM principals WHERE id = $1', [id]);
    return row ? principalFrom(row) : null;
  }

  async createPrincipal(p: PrincipalRecord): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO principals (id, kind, name, password_hash, app_key_id, avatar, extras, token_version,
         blocked, created_at, last_login_at) VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9,$10,$11)
       ON CONFLICT (id) DO NOTHING`,
      [
        p.id,
        p.kind,
        p.name,
        p.passwordHash,
        p.appKeyId,
        p.avatar,
        jsonParam(p.extras),
        p.tokenVersion,
        p.blocked,
        p.createdAt,
        p.lastLoginAt,
      ],
    );
    return result.rowCount === 1;
  }

  async upsertAppUser(
    appKeyId: string,
    user: { id: string; name: string; avatar: string | null; extras: unknown },
    now: number,
  ): Promise<PrincipalRecord | 'conflict'> {
    // One statement: the insert, or the update of this app's own user; no row back means the id is someone else's.
    const row = await this.row<PgPrincipalRow>(
      `INSERT INTO principals (id, kind, name, app_key_id, avatar, extras, created_at, last_login_at)
       VALUES ($1, 'user', $2, $3, $4, $5::jsonb, $6, $6)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, avatar = excluded.avatar, extras = excluded.extras,
         last_login_at = excluded.last_login_at
       WHERE principals.kind = 'user' AND principals.app_key_id = excluded.app_key_id
       RETURNING *`,
      [user.id, user.name, appKeyId, user.avatar, jsonParam(user.extras), now],
    );
    return row ? principalFrom(row) : 'conflict';
  }

  async setLastLogin(id: string, now: number): Promise<void> {
    await this.pool.query('UPDATE principals SET last_login_at = $2 WHERE id = $1', [id, now]);
  }

  async setBlocked(id: string, blocked: boolean): Promise<PrincipalRecord | null> {
    const row = await this.row<PgPrincipalRow>('UPDATE principals SET blocked = $2 WHERE id = $1 RETURNING *', [
      id,
      blocked,
    ]);
    return row ? principalFrom(row) : null;
  }

  async bumpTokenVersion(id: string, now: number): Promise<PrincipalRecord | null> {
    return this.transaction(async (db) => {
      const row = await this.row<PgPrincipalRow>(
        'UPDATE principals SET token_version = token_version + 1 WHERE id = $1 RETURNING *',
        [id],
        db,
      );
      await db.query('UPDATE login_sessions SET revoked_at = $2 WHERE principal_id = $1 AND revoked_at IS NULL', [
        id,
        now,
      ]);
      await db.query('UPDATE refresh_tokens SET used_at = $2 WHERE principal_id = $1 AND used_at IS NULL', [id, now]);
      return row ? principalFrom(row) : null;
    });
  }

  async countPrincipals(): Promise<Record<PrincipalKind, number>> {
    const counts: Record<PrincipalKind, number> = { user: 0, agent: 0, customer: 0 };
    for (const row of await this.rows<{ kind: PrincipalKind; n: number }>(
      'SELECT kind, COUNT(*) AS n FROM principals GROUP BY kind',
    ))
      counts[row.kind] = row.n;
    return counts;
  }

  async createLoginSession(s: LoginSessionRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO login_sessions (sid, principal_id, kind, device_type, device_id, created_at, revoked_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7)`,
      [s.sid, s.principalId, s.kind, s.deviceType, s.deviceId, s.createdAt, s.revokedAt],
    );
  }

  async getLoginSession(sid: string): Promise<LoginSessionRecord | null> {
    const row = await this.row<LoginSessionRow>('SELECT * FROM login_sessions WHERE sid = $1', [sid]);
    return row ? toLoginSession(row) : null;
  }

  async revocationState(principalId: string, sid: string): Promise<RevocationState> {
    const row = await this.row<{ token_version: number | null; blocked: boolean | null; revoked: boolean }>(
      `SELECT p.token_version, p.blocked, s.revoked_at IS NOT NULL AS revoked FROM (SELECT 1) AS one
       LEFT JOIN principals p ON p.id = $1 LEFT JOIN login_sessions s ON s.sid = $2`,
      [principalId, sid],
    );
    return {
      principal:
        row?.token_version == null ? null : { tokenVersion: Number(row.token_version), blocked: row.blocked === true },
      sessionRevoked: row?.revoked === true,
    };
  }

  async revokeLoginSession(sid: string, now: number): Promise<boolean> {
    return this.transaction(async (db) => {
      const result = await db.query('UPDATE login_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE sid = $1', [
        sid,
        now,
      ]);
      await db.query('UPDATE refresh_tokens SET used_at = COALESCE(used_at, $2) WHERE sid = $1', [sid, now]);
      return result.rowCount === 1;
    });
  }

  async saveRefreshToken(t: RefreshTokenRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO refresh_tokens (hash, family_id, sid, principal_id, kind, device_type, device_id, created_at,
         expires_at, used_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
      [t.hash, t.familyId, t.sid, t.principalId, t.kind, t.deviceType, t.deviceId, t.createdAt, t.expiresAt, t.usedAt],
    );
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenRecord | null> {
    const row = await this.row<RefreshRow>('SELECT * FROM refresh_tokens WHERE hash = $1', [hash]);
    return row ? toRefresh(row) : null;
  }

  async rotateRefreshToken(hash: string, successorHash: string, now: number, graceMs: number): Promise<RefreshUse> {
    // Each step is one statement, atomic on its own: of concurrent uses only one finds used_at
    // still NULL (the presented token's, then the successor's), so one rotates and one may get grace.
    const spent = await this.row<RefreshRow>(ROTATE_REFRESH, [hash, successorHash, now]);
    if (spent) return { status: 'ok', token: toRefresh(spent) };
    if (graceMs > 0) {
      const presented = await this.row<RefreshRow>(GRACE_REFRESH, [hash, successorHash, now, graceMs]);
      if (presented) return { status: 'grace', token: toRefresh(presented) };
    }
    const row = await this.row<RefreshRow>('SELECT * FROM refresh_tokens WHERE hash = $1', [hash]);
    if (!row) return { status: 'unknown' };
    if (row.used_at !== null) return { status: 'reused', token: toRefresh(row) };
    return { status: 'expired' };
  }

  async saveTicket(t: TicketRecord): Promise<void> {
    await this.transaction(async (db) => {
      await db.query('DELETE FROM tickets WHERE expires_at <= $1', [t.expiresAt - 3_600_000]);
      await db.query(
        `INSERT INTO tickets (hash, principal_id, kind, name, sid, token_version, device_type, device_id,
           token_expires_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
        [
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
        ],
      );
    });
  }

  async consumeTicket(hash: string, now: number): Promise<TicketRecord | null> {
    // DELETE ... RETURNING hands the row to exactly one of concurrent consumers; an expired one is dropped too.
    const row = await this.row<TicketRow>('DELETE FROM tickets WHERE hash = $1 RETURNING *', [hash]);
    return row && row.expires_at > now ? toTicket(row) : null;
  }

  async createConversation(c: ConversationRecord, members: string[]): Promise<void> {
    await this.transaction(async (db) => {
      await db.query(`${INSERT_CONVERSATION} RETURNING id`, conversationValues(c));
      await this.insertMembers(db, [c.id], [members]);
    });
  }

  /** Members of several conversations in one statement; present ones are left alone. */
  private async insertMembers(db: Queryable, conversationIds: string[], members: string[][]): Promise<void> {
    const conversationColumn: string[] = [];
    const principalColumn: string[] = [];
    for (const [i, conversationId] of conversationIds.entries())
      for (const principalId of members[i] ?? []) {
        conversationColumn.push(conversationId);
        principalColumn.push(principalId);
      }
    if (conversationColumn.length === 0) return;
    // Sorted, so two transactions inserting overlapping members take the index entries in the same order.
    await db.query(
      `INSERT INTO members (conversation_id, principal_id)
       SELECT c, p FROM unnest($1::text[], $2::text[]) AS m(c, p) ORDER BY p COLLATE "C", c COLLATE "C"
       ON CONFLICT DO NOTHING`,
      [conversationColumn, principalColumn],
    );
  }

  async getConversation(id: string): Promise<ConversationRecord | null> {
    const row = await this.row<ConversationRow>('SELECT * FROM conversations WHERE id = $1', [id]);
    return row ? toConversation(row) : null;
  }

  async members(conversationId: string): Promise<string[]> {
    return (
      await this.rows<{ principal_id: string }>(
        'SELECT principal_id FROM members WHERE conversation_id = $1 ORDER BY principal_id',
        [conversationId],
      )
    ).map((r) => r.principal_id);
  }

  async addMembers(conversationId: string, principalIds: string[]): Promise<void> {
    await this.insertMembers(this.pool, [conversationId], [principalIds]);
  }

  async removeMember(conversationId: string, principalId: string): Promise<boolean> {
    const result = await this.pool.query('DELETE FROM members WHERE conversation_id = $1 AND principal_id = $2', [
      conversationId,
      principalId,
    ]);
    return result.rowCount === 1;
  }

  /**
   * One transaction: create the direct conversations the batch asks for, lock every
   * conversation row of the batch (in id order, so concurrent batches never deadlock),
   * then, with every other appender to these conversations waiting on those locks, look
   * up earlier client_msg_ids, assign seqs after `last_seq` and write messages and the new
   * `last_seq`s. Seqs are therefore gap-free and unique across nodes.
   */
  async appendMessages(batch: NewMessage[]): Promise<AppendResult[]> {
    if (batch.length === 0) return [];
    return this.transaction(async (db) => {
      const direct = new Map<string, { ts: number; members: [string, string] }>();
      for (const m of batch)
        if (m.createDirect && !direct.has(m.conversationId))
          direct.set(m.conversationId, { ts: m.ts, members: m.createDirect.members });
      if (direct.size > 0) {
        const ids = [...direct.keys()].sort();
        await db.query(
          `INSERT INTO conversations (id, kind, last_seq, created_at)
           SELECT id, 'direct', 0, ts FROM unnest($1::text[], $2::bigint[]) AS d(id, ts) ORDER BY id COLLATE "C"
           ON CONFLICT (id) DO NOTHING`,
          [ids, ids.map((id) => direct.get(id)?.ts)],
        );
        await this.insertMembers(
          db,
          ids,
          ids.map((id) => direct.get(id)?.members ?? []),
        );
      }

      const conversationIds = [...new Set(batch.map((m) => m.conversationId))];
      const locked = await this.rows<{
        id: string;
        last_seq: number;
        customer_id: string | null;
        waiting_since: number | null;
      }>(
        `SELECT id, last_seq, customer_id, waiting_since FROM conversations WHERE id = ANY($1::text[])
         ORDER BY id FOR UPDATE`,
        [conversationIds],
        db,
      );
      // A support session's customer writing for the first time puts it in the queue.
      const waitingSince = new Map<string, number>();
      const awaitingCustomer = new Map(
        locked.filter((r) => r.customer_id !== null && r.waiting_since === null).map((r) => [r.id, r.customer_id]),
      );
      const startSeq = new Map(locked.map((r) => [r.id, r.last_seq]));
      const lastSeq = new Map(startSeq);
      const missing = conversationIds.find((id) => !lastSeq.has(id));
      if (missing !== undefined) throw new Error(`conversation ${missing} does not exist`);

      const earlier = new Map<string, MessageRecord>();
      const keyed = batch.filter((m) => m.clientMsgId !== null);
      if (keyed.length > 0) {
        const found = await this.rows<MessageRow>(
          `SELECT msg.* FROM messages msg
           JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(c, f, cm)
             ON msg.conversation_id = k.c AND msg.from_id = k.f AND msg.client_msg_id = k.cm`,
          [keyed.map((m) => m.conversationId), keyed.map((m) => m.fromId), keyed.map((m) => m.clientMsgId)],
          db,
        );
        for (const row of found)
          earlier.set(dedupKey(row.conversation_id, row.from_id, row.client_msg_id as string), toMessage(row));
      }

      const results: AppendResult[] = [];
      const inserted: { record: MessageRecord; clientMsgId: string | null; fromDevice: string | null }[] = [];
      for (const m of batch) {
        const key = m.clientMsgId === null ? null : dedupKey(m.conversationId, m.fromId, m.clientMsgId);
        const original = key === null ? undefined : earlier.get(key);
        if (original) {
          results.push({ record: original, duplicate: true });
          continue;
        }
        const seq = (lastSeq.get(m.conversationId) as number) + 1;
        lastSeq.set(m.conversationId, seq);
        const record: MessageRecord = {
          id: m.id,
          conversationId: m.conversationId,
          seq,
          fromId: m.fromId,
          ts: m.ts,
          body: m.serialize(seq),
        };
        if (key !== null) earlier.set(key, record);
        if (awaitingCustomer.get(m.conversationId) === m.fromId && !waitingSince.has(m.conversationId))
          waitingSince.set(m.conversationId, m.ts);
        inserted.push({ record, clientMsgId: m.clientMsgId, fromDevice: m.fromDevice });
        results.push({ record, duplicate: false });
      }

      if (inserted.length > 0) {
        await db.query(
          `INSERT INTO messages (conversation_id, seq, id, from_id, from_device, client_msg_id, ts, body)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
             $8::text[])`,
          [
            inserted.map((i) => i.record.conversationId),
            inserted.map((i) => i.record.seq),
            inserted.map((i) => i.record.id),
            inserted.map((i) => i.record.fromId),
            inserted.map((i) => i.fromDevice),
            inserted.map((i) => i.clientMsgId),
            inserted.map((i) => i.record.ts),
            inserted.map((i) => i.record.body),
          ],
        );
        const changed = conversationIds.filter((id) => lastSeq.get(id) !== startSeq.get(id));
        await db.query(
          `UPDATE conversations c SET last_seq = v.seq, waiting_since = COALESCE(c.waiting_since, v.waiting)
           FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(id, seq, waiting) WHERE c.id = v.id`,
          [changed, changed.map((id) => lastSeq.get(id)), changed.map((id) => waitingSince.get(id) ?? null)],
        );
      }
      return results;
    });
  }

  async messagesAfter(
    conversationId: string,
    afterSeq: number,
    limit: number,
    exclude?: { fromId: string; fromDevice: string },
  ): Promise<MessageRecord[]> {
    const rows = exclude
      ? await this.rows<MessageRow>(
          `SELECT * FROM messages WHERE conversation_id = $1 AND seq > $2
             AND (from_id <> $4 OR from_device IS DISTINCT FROM $5) ORDER BY seq DESC LIMIT $3`,
          [conversationId, afterSeq, limit, exclude.fromId, exclude.fromDevice],
        )
      : await this.rows<MessageRow>(
          'SELECT * FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq DESC LIMIT $3',
          [conversationId, afterSeq, limit],
        );
    return rows.reverse().map(toMessage);
  }

  async messagesBefore(conversationId: string, beforeSeq: number | null, limit: number): Promise<MessageRecord[]> {
    const rows = await this.rows<MessageRow>(
      'SELECT * FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3',
      [conversationId, beforeSeq ?? Number.MAX_SAFE_INTEGER, limit],
    );
    return rows.reverse().map(toMessage);
  }

  async replayCursors(
    principalId: string,
    deviceType: string,
  ): Promise<{ conversationId: string; cursor: number; lastSeq: number }[]> {
    return this.rows(
      `SELECT c.id AS "conversationId", COALESCE(cur.seq, 0) AS cursor, c.last_seq AS "lastSeq"
       FROM members m JOIN conversations c ON c.id = m.conversation_id
       LEFT JOIN cursors cur ON cur.principal_id = m.principal_id AND cur.device_type = $2 AND cur.conversation_id = c.id
       WHERE m.principal_id = $1 AND c.last_seq > COALESCE(cur.seq, 0) ORDER BY c.id`,
      [principalId, deviceType],
    );
  }

  async advanceCursor(principalId: string, deviceType: string, conversationId: string, seq: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO cursors (principal_id, device_type, conversation_id, seq) VALUES ($1,$2,$3,$4)
       ON CONFLICT (principal_id, device_type, conversation_id) DO UPDATE SET seq = GREATEST(cursors.seq, excluded.seq)`,
      [principalId, deviceType, conversationId, seq],
    );
  }

  async peersOf(principalId: string, limit: number): Promise<string[]> {
    return (
      await this.rows<{ id: string }>(
        `SELECT DISTINCT other.principal_id AS id FROM members mine
         JOIN conversations c ON c.id = mine.conversation_id AND c.kind IN ('direct', 'support')
         JOIN members other ON other.conversation_id = mine.conversation_id AND other.principal_id <> mine.principal_id
         WHERE mine.principal_id = $1 LIMIT $2`,
        [principalId, limit],
      )
    ).map((r) => r.id);
  }

  async conversationsOf(principalId: string, deviceType: string): Promise<ConversationSummary[]> {
    const rows = await this.rows<ConversationRow & { cursor: number; unread: number }>(
      `SELECT c.*, COALESCE(cur.seq, 0) AS cursor,
         (SELECT COUNT(*) FROM messages msg WHERE msg.conversation_id = c.id AND msg.seq > COALESCE(cur.seq, 0)
            AND msg.from_id <> m.principal_id) AS unread
       FROM members m JOIN conversations c ON c.id = m.conversation_id
       LEFT JOIN cursors cur ON cur.principal_id = m.principal_id AND cur.device_type = $2 AND cur.conversation_id = c.id
       WHERE m.principal_id = $1 ORDER BY c.created_at DESC`,
      [principalId, deviceType],
    );
    return rows.map((row) => ({ conversation: toConversation(row), cursor: row.cursor, unread: row.unread }));
  }

  async claimSupport(conversationId: string, agentId: string): Promise<'ok' | 'taken' | 'not_found' | 'closed'> {
    return this.transaction(async (db) => {
      // The row lock decides between concurrent claims: the second re-reads agent_id after the first commits.
      const claimed = await db.query(
        `UPDATE conversations SET agent_id = $2, status = 'claimed'
         WHERE id = $1 AND kind = 'support' AND status IS DISTINCT FROM 'closed' AND (agent_id IS NULL OR agent_id = $2)`,
        [conversationId, agentId],
      );
      if (claimed.rowCount === 1) {
        await this.insertMembers(db, [conversationId], [[agentId]]);
        return 'ok' as const;
      }
      const row = await this.row<ConversationRow>(
        "SELECT * FROM conversations WHERE id = $1 AND kind = 'support'",
        [conversationId],
        db,
      );
      if (!row) return 'not_found' as const;
      return row.status === 'closed' ? ('closed' as const) : ('taken' as const);
    });
  }

  async closeSupport(conversationId: string): Promise<void> {
    await this.pool.query("UPDATE conversations SET status = 'closed' WHERE id = $1", [conversationId]);
  }

  async openSupportSession(
    session: ConversationRecord,
  ): Promise<{ conversation: ConversationRecord; created: boolean }> {
    // The unique index on a customer's session not closed decides between concurrent calls: the
    // loser's insert waits for the winner's commit, does nothing, and then reads the winner's row.
    for (let attempt = 1; ; attempt++) {
      const result = await this.transaction(async (db) => {
        const inserted = await this.row<ConversationRow>(
          `${INSERT_CONVERSATION} ON CONFLICT (customer_id) WHERE kind = 'support' AND status <> 'closed' DO NOTHING
           RETURNING *`,
          conversationValues(session),
          db,
        );
        if (inserted) {
          await this.insertMembers(db, [session.id], [[session.customerId as string]]);
          return { conversation: toConversation(inserted), created: true };
        }
        const existing = await this.row<ConversationRow>(
          "SELECT * FROM conversations WHERE customer_id = $1 AND kind = 'support' AND status <> 'closed'",
          [session.customerId],
          db,
        );
        return existing ? { conversation: toConversation(existing), created: false } : null;
      });
      // null: the session it collided with was closed in between; try again.
      if (result) return result;
      if (attempt >= MAX_ATTEMPTS) throw new Error(`no stable support session for customer ${session.customerId}`);
    }
  }

  async listSupport(status: 'open' | 'mine', agentId: string, limit: number): Promise<SupportListing[]> {
    const select = `SELECT c.*, p.name AS customer_name,
        CASE WHEN jsonb_typeof(p.extras -> 'channel') = 'string' THEN p.extras ->> 'channel' END AS channel,
        f.id AS first_id, f.from_id AS first_from_id, f.ts AS first_ts, f.body AS first_body
      FROM conversations c
      LEFT JOIN principals p ON p.id = c.customer_id
      LEFT JOIN messages f ON f.conversation_id = c.id AND f.seq = 1`;
    const rows =
      status === 'open'
        ? await this.rows<SupportListingRow>(
            `${select} WHERE c.kind = 'support' AND c.status = 'open' AND c.waiting_since IS NOT NULL
             ORDER BY c.waiting_since, c.id LIMIT $1`,
            [limit],
          )
        : await this.rows<SupportListingRow>(
            `${select} WHERE c.kind = 'support' AND c.status = 'claimed' AND c.agent_id = $1
             ORDER BY c.created_at, c.id LIMIT $2`,
            [agentId, limit],
          );
    return rows.map(toSupportListing);
  }

  async createAppKey(k: AppKeyRecord): Promise<void> {
    await this.pool.query('INSERT INTO app_keys (id, name, key_hash, created_at) VALUES ($1,$2,$3,$4)', [
      k.id,
      k.name,
      k.keyHash,
      k.createdAt,
    ]);
  }

  async findAppKey(keyHash: string): Promise<AppKeyRecord | null> {
    const row = await this.row<AppKeyRow>('SELECT * FROM app_keys WHERE key_hash = $1', [keyHash]);
    return row ? toAppKey(row) : null;
  }

  async listAppKeys(): Promise<AppKeyRecord[]> {
    return (await this.rows<AppKeyRow>('SELECT * FROM app_keys ORDER BY created_at')).map(toAppKey);
  }
}
