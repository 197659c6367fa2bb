import { createHash, randomUUID } from 'node:crypto';
import { CloseCode, type PrincipalInfo } from '@gatehouse/protocol';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { GatehouseConfig } from '../config.js';
import type { ControlChannel } from '../control-channel.js';
import { GatehouseError } from '../errors.js';
import { type Connection, SETTLED } from '../gateway/connection.js';
import { encodeTextFrame } from '../gateway/frame-writer.js';
import type { ConversationRecord, MessageRecord, Store } from '../store/store.js';
import type { ConversationDirectory, ConversationEntry } from './conversation-directory.js';
import type { Delivery } from './delivery.js';
import type { MessageWriter } from './message-writer.js';
import { describeSession, SupportSessions } from './support-sessions.js';

export interface SendInput {
  conversationId: string | null;
  to: string | null;
  text: string | null;
  data: unknown;
  clientMsgId: string | null;
}

export interface Ack {
  message_id: string;
  conversation_id: string;
  seq: number;
  ts: number;
}

/** Pairs whose direct conversation id is kept: a SHA-256 per message cost ~2-4 µs of ~45. */
const DIRECT_IDS_CACHED = 10_000;
const directIds = new Map<string, string>();

/** `dm_` + a hash of the two ids in order: the same pair always names the same conversation. */
export function directConversationId(a: string, b: string): string {
  const pair = a < b ? `${a}\n${b}` : `${b}\n${a}`;
  let id = directIds.get(pair);
  if (id === undefined) {
    id = `dm_${createHash('sha256').update(pair).digest('base64url').slice(0, 32)}`;
    // Bounded: when full, the oldest pair goes (Map keeps insertion order).
    if (directIds.size >= DIRECT_IDS_CACHED) directIds.delete(directIds.keys().next().value as string);
    directIds.set(pair, id);
  }
  return id;
}

/**
 * A sender's `from` as JSON, made once per authenticated principal object (a new one comes
 * with every authentication, so a renamed principal's next session is serialized afresh).
 */
const principalJson = new WeakMap<PrincipalInfo, string>();
function fromJson(from: PrincipalInfo): string {
  let json = principalJson.get(from);
  if (json === undefined) {
    json = JSON.stringify(from);
    principalJson.set(from, json);
  }
  return json;
}

const eventFrame = (type: 'message' | 'offline_message', body: string) =>
  `{"type":"${type}","code":200,"message":${body}}`;

/**
 * Conversations and messages: send (membership, size, group-committed store, ack, then
 * live fan-out), delivery cursors, offline replay, history and the support flow.
 */
export class Messaging {
  constructor(
    private readonly store: Store,
    private readonly directory: ConversationDirectory,
    private readonly writer: MessageWriter,
    private readonly delivery: Delivery,
    private readonly control: ControlChannel,
    /** The slice of the configuration messaging uses. */
    private readonly limits: GatehouseConfig['messages'],
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Cluster presence: which of these principals are connected on some live node. */
    online: (principalIds: string[]) => Promise<Set<string>>,
  ) {
    control.on((event) => {
      if (event.op === 'conversation-changed') directory.invalidate(event.id);
    });
    this.support = new SupportSessions(
      store,
      directory,
      delivery,
      control,
      clock,
      log,
      (conn, ids) => this.replay(conn, ids),
      online,
    );
  }

  private readonly support: SupportSessions;

  /** Loads a conversation the principal belongs to: NOT_FOUND, or NOT_MEMBER (403). */
  async memberConversation(conversationId: string, principalId: string): Promise<ConversationEntry> {
    const entry = await this.directory.get(conversationId);
    if (!entry) throw new GatehouseError('NOT_FOUND', 'no such conversation');
    if (!entry.members.has(principalId)) throw new GatehouseError('NOT_MEMBER', 'not a member of this conversation');
    return entry;
  }

  /**
   * Stores a message. Resolves once committed with the ack and `publish`, which the caller
   * runs right after sending the ack, so the sender sees its ack before any echo.
   */
  async send(
    from: PrincipalInfo,
    input: SendInput,
    sender: Pick<Connection, 'id' | 'sendOrder' | 'deviceType'>,
  ): Promise<{ ack: Ack; publish: () => void }> {
    // Checks below may await the store a different number of times per message; this socket's
    // messages still enter the group commit in the order they arrived, so their seqs keep it.
    const previous = sender.sendOrder;
    let entered!: () => void;
    sender.sendOrder = new Promise((resolve) => {
      entered = resolve;
    });
    try {
      return await this.sendInOrder(from, input, sender, previous, entered);
    } finally {
      entered();
    }
  }

  private async sendInOrder(
    from: PrincipalInfo,
    input: SendInput,
    sender: Pick<Connection, 'id' | 'deviceType'>,
    previous: Promise<void>,
    entered: () => void,
  ): Promise<{ ack: Ack; publish: () => void }> {
    if (input.text === null && input.data === undefined)
      throw new GatehouseError('INVALID_REQUEST', 'a message needs text or data');
    if (input.text !== null && Buffer.byteLength(input.text) > this.limits.maxTextBytes)
      throw new GatehouseError('PAYLOAD_TOO_LARGE', `text exceeds ${this.limits.maxTextBytes} bytes`);
    // Serialized now, so data that cannot be (nested too deep) fails this send alone, not a batch.
    let dataJson: string | null = null;
    if (input.data !== undefined) {
      try {
        dataJson = JSON.stringify(input.data);
      } catch {
        throw new GatehouseError('INVALID_REQUEST', 'data cannot be stored (nested too deeply)');
      }
    }
    let conversationId: string;
    let createDirect: { members: [string, string] } | undefined;
    let members: string[];
    let entry: ConversationEntry | null = null;
    if (input.conversationId !== null) {
      entry = await this.memberConversation(input.conversationId, from.id);
      if (entry.conversation.status === 'closed')
        throw new GatehouseError('FORBIDDEN', 'this support session is closed');
      conversationId = input.conversationId;
      members = entry.memberList;
    } else {
      const to = input.to as string;
      conversationId = directConversationId(from.id, to);
      members = from.id === to ? [from.id] : [from.id, to];
      entry = await this.directory.get(conversationId);
      await this.checkDirectAllowed(from, to, entry !== null);
      if (!entry) createDirect = { members: [from.id, to] };
    }
    const ts = this.clock.now();
    const id = randomUUID();
    const head = `{"id":"${id}","conversation_id":${JSON.stringify(conversationId)},"seq":`;
    const tail =
      `,"from":${fromJson(from)},"text":${JSON.stringify(input.text)}` +
      (dataJson !== null ? `,"data":${dataJson}` : '') +
      `,"ts":${ts}` +
      (input.clientMsgId !== null ? `,"client_msg_id":${JSON.stringify(input.clientMsgId)}` : '') +
      '}';
    await previous;
    const appended = this.writer.append({
      id,
      conversationId,
      fromId: from.id,
      fromDevice: sender.deviceType,
      clientMsgId: input.clientMsgId,
      ts,
      createDirect,
      serialize: (seq) => head + seq + tail,
    });
    entered();
    const { record, duplicate } = await appended;
    const ack = { message_id: record.id, conversation_id: conversationId, seq: record.seq, ts: record.ts };
    const publish = () => {
      // A duplicate was delivered the first time.
      if (duplicate) return;
      this.delivery.publishMessage(members, conversationId, record.seq, eventFrame('message', record.body), sender.id);
      const conversation = entry?.conversation;
      if (conversation?.kind === 'support' && conversation.status === 'open' && from.kind === 'customer') {
        if (conversation.waitingSince === null) {
          // This message put the session in the queue (the store set waiting_since): nodes reload it.
          this.directory.invalidate(conversationId);
          this.control
            .publish({ op: 'conversation-changed', id: conversationId })
            .catch((err) => this.log.warn({ err }, 'conversation change publish failed'));
        }
        // The cached record's lastSeq is from when it was loaded; this message is the last one now.
        const session = this.describeSession(
          { ...conversation, lastSeq: record.seq, waitingSince: conversation.waitingSince ?? record.ts },
          from,
        );
        this.delivery.publishToAgents(
          `{"type":"session_waiting","code":200,"session":${JSON.stringify(session)},"message":${record.body}}`,
        );
      }
    };
    return { ack, publish };
  }

  /**
   * `exists`: the direct conversation is already there. It passed the store checks when it was
   * created, and what they look at (both principals' existence, kind and app) never changes,
   * so only the sender's side is checked again: two store reads less per message.
   */
  private async checkDirectAllowed(from: PrincipalInfo, to: string, exists: boolean): Promise<void> {
    if (from.kind === 'customer') throw new GatehouseError('FORBIDDEN', 'customers write in their support session');
    if (to === from.id) throw new GatehouseError('INVALID_REQUEST', 'cannot send a direct message to yourself');
    if (exists) return;
    const [sender, target] = await Promise.all([this.store.getPrincipal(from.id), this.store.getPrincipal(to)]);
    if (!target) throw new GatehouseError('NOT_FOUND', `no principal "${to}"`);
    if (target.kind === 'customer')
      throw new GatehouseError('FORBIDDEN', 'customers are reached through support sessions');
    // Users of different apps never see each other: app ids are tenants.
    if (sender?.appKeyId && target.appKeyId && sender.appKeyId !== target.appKeyId)
      throw new GatehouseError('FORBIDDEN', `no principal "${to}" in this app`);
  }

  /** `ack`: everything up to `seq` counts as delivered to this device type. */
  async acknowledge(conn: Connection, conversationId: string, seq: number): Promise<void> {
    const principal = conn.principal as PrincipalInfo;
    const entry = await this.memberConversation(conversationId, principal.id);
    if (seq > entry.conversation.lastSeq) {
      const fresh = await this.store.getConversation(conversationId);
      if (!fresh || seq > fresh.lastSeq) throw new GatehouseError('INVALID_REQUEST', 'seq is beyond the last message');
    }
    await this.store.advanceCursor(principal.id, conn.deviceType, conversationId, seq);
  }

  /** A page of history, oldest first, as serialized JSON bodies. */
  async history(
    principalId: string,
    conversationId: string,
    beforeSeq: number | null,
    limit: number,
  ): Promise<{ messages: MessageRecord[]; hasMore: boolean }> {
    await this.memberConversation(conversationId, principalId);
    const rows = await this.store.messagesBefore(conversationId, beforeSeq, limit + 1);
    const hasMore = rows.length > limit;
    return { messages: hasMore ? rows.slice(1) : rows, hasMore };
  }

  /**
   * Offline replay after authentication: per conversation, what lies above this device
   * type's cursor (the newest `messages.replayLimit`, `truncated` when capped), oldest first,
   * then `offline_messages_complete`. Live messages arriving meanwhile wait and follow,
   * minus those the replay already sent.
   */
  async replay(conn: Connection, conversationIds?: string[]): Promise<void> {
    const run = conn.replayQueue.then(() => this.replayNow(conn, conversationIds));
    const queued = run.catch(() => {});
    conn.replayQueue = queued;
    // Once nothing follows it, an idle socket goes back to the shared settled promise.
    void queued.then(() => {
      if (conn.replayQueue === queued) conn.replayQueue = SETTLED;
    });
    return run;
  }

  /**
   * From the bind on, live messages to the connection wait for its first replay (which runs some
   * awaits later: with PostgreSQL, after the slot claim commits). Sent at once, a message stored
   * in between would arrive before the older ones the replay sends, and then again in the replay.
   */
  holdUntilReplay(conn: Connection): void {
    conn.replay ??= { pending: [] };
  }

  private async replayNow(conn: Connection, conversationIds?: string[]): Promise<void> {
    if (conn.closed) return;
    const principal = conn.principal as PrincipalInfo;
    // Takes over what was held since the bind (holdUntilReplay).
    const state = conn.replay ?? { pending: [] };
    conn.replay = state;
    const replayedUpTo = new Map<string, number>();
    let count = 0;
    const truncated: string[] = [];
    try {
      let cursors = await this.store.replayCursors(principal.id, conn.deviceType);
      if (conversationIds) cursors = cursors.filter((c) => conversationIds.includes(c.conversationId));
      const limit = this.limits.replayLimit;
      // This device type's own sends are never replayed to it (it got their ack).
      const own = { fromId: principal.id, fromDevice: conn.deviceType };
      const skips: Promise<void>[] = [];
      for (const { conversationId, cursor, lastSeq } of cursors) {
        const rows = await this.store.messagesAfter(conversationId, cursor, limit + 1, own);
        if (rows.length > limit) {
          rows.shift();
          truncated.push(conversationId);
        } else {
          // Complete: what lies between the cursor and the first row (or lastSeq) is all its own
          // sends, so the cursor moves up to there; nothing of the others' is passed over.
          const ownUpTo = rows.length > 0 ? (rows[0] as MessageRecord).seq - 1 : lastSeq;
          // Only saves the next replay a read: a failure is no reason to fail this one.
          if (ownUpTo > cursor)
            skips.push(
              this.store
                .advanceCursor(principal.id, conn.deviceType, conversationId, ownUpTo)
                .catch((err) => this.log.warn({ err }, 'could not move the cursor past own messages')),
            );
        }
        for (const row of rows) {
          conn.sendFrame(encodeTextFrame(eventFrame('offline_message', row.body)));
          // A backlog larger than the buffer limit goes out in steps, each once the last has left:
          // written at once it would get a reading client cut off as a slow one.
          if (conn.unsentBytes() >= conn.maxBufferedBytes / 2) {
            await conn.drained();
            if (conn.closed) return;
          }
        }
        count += rows.length;
        const last = rows.at(-1);
        if (last) replayedUpTo.set(conversationId, last.seq);
      }
      await Promise.all(skips);
      conn.send({
        type: 'offline_messages_complete',
        code: 200,
        count,
        truncated: truncated.length > 0,
        ...(truncated.length > 0 ? { truncated_conversations: truncated } : {}),
      });
    } catch (err) {
      this.log.error({ err }, 'offline replay failed');
      conn.send({
        type: 'error',
        code: 503,
        body: null,
        error: 'STORE_UNAVAILABLE',
        err_msg: 'offline replay failed; reconnect to retry',
      });
      // Every client knows to reconnect (slowly) after 1013; the cursors did not move, so the
      // next connection replays the same messages. Left open, the socket would miss them.
      conn.close(CloseCode.TRY_AGAIN_LATER, 'STORE_UNAVAILABLE');
    } finally {
      conn.replay = null;
      for (const item of state.pending)
        if (item.seq > (replayedUpTo.get(item.conversationId) ?? 0)) conn.sendFrame(item.frame);
    }
  }

  /**
   * The customer's support session that is not closed, or a new one: its id is the `sessionId`
   * of the customer-token answers. A new session enters the agents' queue with the first message.
   */
  async openSupportSession(customerId: string): Promise<string> {
    return (await this.support.sessionOf(customerId)).sessionId;
  }

  /** `POST /api/v1/sessions`: as openSupportSession, and whether it was created. */
  customerSession(customerId: string): Promise<{ sessionId: string; created: boolean }> {
    return this.support.sessionOf(customerId);
  }

  /** The agents' lists: `open` (the queue) or `mine`, with customer name, channel, first message and waiting time. */
  listSessions(status: 'open' | 'mine', agentId: string, limit: number) {
    return this.support.list(status, agentId, limit);
  }

  /** A claimed session for its agent, with whether the customer is connected now. */
  describeWithPresence(c: ConversationRecord) {
    return this.support.describeWithPresence(c);
  }

  describeSession(c: ConversationRecord, customer?: PrincipalInfo) {
    return describeSession(c, customer);
  }

  claim(agent: PrincipalInfo, sessionId: string, agentConnections: Iterable<Connection>): Promise<ConversationRecord> {
    return this.support.claim(agent, sessionId, agentConnections);
  }

  closeSession(agent: PrincipalInfo, sessionId: string): Promise<void> {
    return this.support.close(agent, sessionId);
  }

  async createGroup(name: string, members: string[], appKeyId: string | null): Promise<ConversationRecord> {
    const unique = [...new Set(members)];
    await this.checkGroupMembers(unique, appKeyId);
    const conversation: ConversationRecord = {
      id: `gr_${randomUUID()}`,
      kind: 'group',
      name,
      lastSeq: 0,
      createdAt: this.clock.now(),
      customerId: null,
      agentId: null,
      status: null,
      appKeyId,
      waitingSince: null,
    };
    await this.store.createConversation(conversation, unique);
    return conversation;
  }

  private async checkGroupMembers(ids: string[], appKeyId: string | null): Promise<void> {
    const principals = await Promise.all(ids.map((id) => this.store.getPrincipal(id)));
    const unknown = ids.filter((_, i) => !principals[i] || (appKeyId !== null && principals[i]?.appKeyId !== appKeyId));
    if (unknown.length > 0)
      throw new GatehouseError('INVALID_REQUEST', `unknown members: ${unknown.slice(0, 10).join(', ')}`);
  }

  async addMembers(conversationId: string, ids: string[], appKeyId: string | null): Promise<string[]> {
    await this.groupFor(conversationId, appKeyId);
    await this.checkGroupMembers(ids, appKeyId);
    await this.store.addMembers(conversationId, ids);
    this.directory.invalidate(conversationId);
    await this.control.publish({ op: 'conversation-changed', id: conversationId });
    return this.store.members(conversationId);
  }

  async removeMember(conversationId: string, id: string, appKeyId: string | null): Promise<void> {
    await this.groupFor(conversationId, appKeyId);
    if (!(await this.store.removeMember(conversationId, id))) throw new GatehouseError('NOT_FOUND', 'not a member');
    this.directory.invalidate(conversationId);
    await this.control.publish({ op: 'conversation-changed', id: conversationId });
  }

  /**
   * A group the caller may manage: an admin any, an app the groups it created. Ownership is fixed
   * at creation, so an app never gains a group by whom it holds (an emptied one holds no one).
   */
  private async groupFor(conversationId: string, appKeyId: string | null): Promise<ConversationEntry> {
    const entry = await this.directory.get(conversationId);
    if (entry?.conversation.kind !== 'group') throw new GatehouseError('NOT_FOUND', 'no such group');
    if (appKeyId !== null && entry.conversation.appKeyId !== appKeyId)
      throw new GatehouseError('FORBIDDEN', 'this group belongs to another app');
    return entry;
  }

  drain(): Promise<void> {
    return this.writer.drain();
  }
}
