import { randomUUID } from 'node:crypto';
import type { PrincipalInfo } from '@gatehouse/protocol';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { ControlChannel } from '../control-channel.js';
import { GatehouseError } from '../errors.js';
import type { Connection } from '../gateway/connection.js';
import type { ConversationRecord, Store, SupportListing } from '../store/store.js';
import type { ConversationDirectory } from './conversation-directory.js';
import type { Delivery } from './delivery.js';

/** Characters of the first message an agents' list entry shows. */
const PREVIEW_CHARS = 200;

/** A session as the REST answers and `session_waiting` describe it. */
export function describeSession(c: ConversationRecord, customer?: PrincipalInfo) {
  return {
    id: c.id,
    status: c.status,
    customer_id: c.customerId,
    ...(customer ? { customer } : {}),
    agent_id: c.agentId,
    last_seq: c.lastSeq,
    created_at: c.createdAt,
    waiting_since: c.waitingSince,
  };
}

/** The text of a stored message body cut to PREVIEW_CHARS characters (never inside a surrogate pair); null without text. */
function preview(body: string): string | null {
  const text = (JSON.parse(body) as { text?: unknown }).text;
  if (typeof text !== 'string') return null;
  if (text.length <= PREVIEW_CHARS) return text;
  let end = PREVIEW_CHARS;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return text.slice(0, end);
}

/**
 * The support flow (SPEC §6): a customer has at most one session that is not closed; it
 * enters the agents' queue with the customer's first message; an agent claims it (and gets
 * the backlog) and closes it. Claims and closes are announced live — through the broker, so
 * on every node — to the customer and to the other online agents.
 */
export class SupportSessions {
  constructor(
    private readonly store: Store,
    private readonly directory: ConversationDirectory,
    private readonly delivery: Delivery,
    private readonly control: ControlChannel,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly replay: (conn: Connection, conversationIds: string[]) => Promise<void>,
    /** Which of these principals have a connection on some live node (cluster presence). */
    private readonly online: (principalIds: string[]) => Promise<Set<string>>,
  ) {}

  /**
   * The customer's session that is not closed, or a new one (`created`). A new session is not
   * in the queue yet: it gets there with the customer's first message.
   */
  async sessionOf(customerId: string): Promise<{ sessionId: string; created: boolean }> {
    const { conversation, created } = await this.store.openSupportSession({
      id: `ss_${randomUUID()}`,
      kind: 'support',
      name: null,
      lastSeq: 0,
      createdAt: this.clock.now(),
      customerId,
      agentId: null,
      status: 'open',
      appKeyId: null,
      waitingSince: null,
    });
    return { sessionId: conversation.id, created };
  }

  /** `open`: the queue, longest waiting first; `mine`: the agent's claimed sessions. */
  async list(status: 'open' | 'mine', agentId: string, limit: number) {
    const listings = await this.store.listSupport(status, agentId, limit);
    const customers = listings.flatMap(({ conversation: c }) => (c.customerId === null ? [] : [c.customerId]));
    const online = customers.length > 0 ? await this.online(customers) : new Set<string>();
    return listings.map((listing) => ({
      ...this.describeListing(listing),
      customer_online: listing.conversation.customerId !== null && online.has(listing.conversation.customerId),
    }));
  }

  /** A session as the claim answer gives it: with whether its customer is connected now. */
  async describeWithPresence(c: ConversationRecord) {
    const online = c.customerId !== null && (await this.online([c.customerId])).has(c.customerId);
    return { ...describeSession(c), customer_online: online };
  }

  private describeListing({ conversation: c, customerName, channel, firstMessage }: SupportListing) {
    let first: string | null = null;
    try {
      first = firstMessage ? preview(firstMessage.body) : null;
    } catch (err) {
      this.log.warn({ err, conversationId: c.id }, 'unreadable first message body');
    }
    return {
      ...describeSession(
        c,
        c.customerId !== null ? { id: c.customerId, kind: 'customer', name: customerName ?? '' } : undefined,
      ),
      channel,
      first_message: first,
    };
  }

  /** An agent claims a session: joins it, its live devices get the backlog, and the others are told. */
  async claim(
    agent: PrincipalInfo,
    sessionId: string,
    agentConnections: Iterable<Connection>,
  ): Promise<ConversationRecord> {
    const before = await this.store.getConversation(sessionId);
    const result = await this.store.claimSupport(sessionId, agent.id);
    if (result === 'not_found') throw new GatehouseError('NOT_FOUND', 'no such support session');
    if (result === 'closed') throw new GatehouseError('CONFLICT', 'this support session is closed');
    if (result === 'taken') throw new GatehouseError('CONFLICT', 'another agent has claimed this session');
    this.directory.invalidate(sessionId);
    await this.control.publish({ op: 'conversation-changed', id: sessionId });
    // Not awaited: a replay waits for the socket to take it, and a stalled device must not hold the claim.
    for (const conn of agentConnections) void this.replay(conn, [sessionId]);
    const session = (await this.store.getConversation(sessionId)) as ConversationRecord;
    // A repeated claim by the same agent changed nothing: nothing to announce.
    if (before?.agentId !== agent.id)
      this.announce(
        session,
        agent.id,
        JSON.stringify({
          type: 'session_claimed',
          code: 200,
          session_id: sessionId,
          agent: { id: agent.id, name: agent.name },
        }),
      );
    return session;
  }

  /** The claiming agent closes its session: no more messages; the customer and the other agents are told. */
  async close(agent: PrincipalInfo, sessionId: string): Promise<void> {
    const conversation = await this.store.getConversation(sessionId);
    if (conversation?.kind !== 'support') throw new GatehouseError('NOT_FOUND', 'no such support session');
    if (conversation.agentId !== agent.id)
      throw new GatehouseError('FORBIDDEN', 'only the agent who claimed it can close it');
    if (conversation.status === 'closed') return;
    await this.store.closeSupport(sessionId);
    this.directory.invalidate(sessionId);
    await this.control.publish({ op: 'conversation-changed', id: sessionId });
    this.announce(conversation, agent.id, JSON.stringify({ type: 'session_closed', code: 200, session_id: sessionId }));
  }

  /** To the customer's devices and to every online agent but `actor`, on every node. */
  private announce(session: ConversationRecord, actor: string, frame: string): void {
    if (session.customerId !== null) this.delivery.publishEvent([session.customerId], frame);
    this.delivery.publishToAgents(frame, actor);
  }
}
