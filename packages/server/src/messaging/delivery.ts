import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import { Connection } from '../gateway/connection.js';
import type { ConnectionRegistry } from '../gateway/connection-registry.js';
import { encodeTextFrame } from '../gateway/frame-writer.js';

const DELIVER_TOPIC = 'deliver';
const AGENTS_TOPIC = 'agents';
/** Member lists at least this long have their JSON kept (sending side) and their parse kept (receiving side). */
const KEEP_LISTS_FROM = 16;
/** Parsed member lists kept on the receiving side (one per conversation; all dropped when full). */
const MAX_KEPT_LISTS = 1_000;

interface DeliverHeader {
  c: string | null;
  s: number;
  x: string | null;
  t: number;
}

/** How every `deliver` header starts and how its member list ends (a string cannot hold `"` unescaped). */
const MEMBERS_START = '{"m":';
const MEMBERS_END = '],"c":';

/**
 * Live fan-out. A stored message is published once to every node as
 * `{"m":[member ids],"c":conversation,"s":seq,"x":sender connection,"t":ms}\n<frame JSON>`
 * (agent notices as `{"x":agent to leave out}\n<frame JSON>` on their own topic);
 * each node encodes the frame once and writes the same bytes to every local socket of
 * every member. Nothing here is durable: a node that misses a publication leaves the
 * message to the cursor replay on the device's next authentication.
 *
 * A group's member list is the same from one message to the next: the sending node keeps
 * its JSON per cached list (ConversationDirectory's frozen `memberList`), and a receiving
 * node keeps the last list it parsed per conversation and reuses it while the JSON is
 * equal (a comparison of bytes instead of a parse of a thousand strings per message).
 */
export class Delivery {
  private readonly unsubscribers: (() => Promise<void>)[] = [];
  /** JSON of frozen member lists (the directory's), made once per list. */
  private readonly listJson = new WeakMap<readonly string[], string>();
  /** The last member list parsed per conversation, with its JSON. */
  private readonly parsedLists = new Map<string, { json: string; members: string[] }>();

  constructor(
    private readonly broker: Broker,
    private readonly registry: ConnectionRegistry,
    private readonly log: Logger,
    private readonly observe: { publish(seconds: number): void; delivered(seconds: number): void } = {
      publish() {},
      delivered() {},
    },
    /**
     * This node is the only one (the in-process broker): frames go to the local sockets right
     * away, without a header serialized for the broker and parsed back in the same turn (about
     * 4 % of a direct message's CPU). What other publishers put on the broker is still delivered.
     */
    private readonly alone = false,
  ) {}

  async start(): Promise<void> {
    this.unsubscribers.push(await this.broker.subscribe(DELIVER_TOPIC, (payload) => this.onDeliver(payload)));
    this.unsubscribers.push(await this.broker.subscribe(AGENTS_TOPIC, (payload) => this.onAgents(payload)));
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribers) await unsubscribe();
  }

  /** Sends a stored message's event frame to every device of every member (except the sending socket). */
  publishMessage(
    members: string[],
    conversationId: string,
    seq: number,
    frame: string,
    exceptConnection: string | null,
  ) {
    if (this.alone) {
      this.deliverHere(members, conversationId, seq, exceptConnection, frame);
      return;
    }
    const sentAt = Date.now();
    // The layout JSON.stringify gives {m, c, s, x, t}, which nodes of earlier versions parse.
    const header =
      `${MEMBERS_START}${this.membersJson(members)},"c":${JSON.stringify(conversationId)},"s":${seq},` +
      `"x":${JSON.stringify(exceptConnection)},"t":${sentAt}}`;
    this.broker.publish(DELIVER_TOPIC, `${header}\n${frame}`).then(
      () => this.observe.publish((Date.now() - sentAt) / 1000),
      (err) => this.log.warn({ err }, 'live delivery publish failed; cursor replay will deliver'),
    );
  }

  /** Sends an event frame (not a stored message) to every device of these principals on every node. */
  publishEvent(principals: string[], frame: string): void {
    if (this.alone) {
      this.deliverHere(principals, null, 0, null, frame);
      return;
    }
    const header = JSON.stringify({ m: principals, c: null, s: 0, x: null, t: Date.now() });
    this.broker
      .publish(DELIVER_TOPIC, `${header}\n${frame}`)
      .catch((err) => this.log.warn({ err }, 'event publish failed'));
  }

  /** Sends a frame to every online agent on every node, except the devices of `exceptAgent`. */
  publishToAgents(frame: string, exceptAgent: string | null = null): void {
    if (this.alone) {
      this.agentsHere(frame, exceptAgent);
      return;
    }
    this.broker
      .publish(AGENTS_TOPIC, `${JSON.stringify({ x: exceptAgent })}\n${frame}`)
      .catch((err) => this.log.warn({ err }, 'agent notification failed'));
  }

  private membersJson(members: readonly string[]): string {
    if (members.length < KEEP_LISTS_FROM || !Object.isFrozen(members)) return JSON.stringify(members);
    let json = this.listJson.get(members);
    if (json === undefined) {
      json = JSON.stringify(members);
      this.listJson.set(members, json);
    }
    return json;
  }

  private onDeliver(payload: string): void {
    const newline = payload.indexOf('\n');
    if (newline < 0) return;
    let header: DeliverHeader;
    let members: unknown;
    try {
      const membersEnd = payload.startsWith(MEMBERS_START) ? payload.indexOf(MEMBERS_END, MEMBERS_START.length) : -1;
      if (membersEnd < 0 || membersEnd > newline) {
        header = JSON.parse(payload.slice(0, newline));
        members = (header as DeliverHeader & { m?: unknown }).m;
      } else {
        // The member list is cut out by position and parsed only when it changed (parseMembers).
        header = JSON.parse(`{${payload.slice(membersEnd + 2, newline)}`);
        members = this.parseMembers(header.c, payload.slice(MEMBERS_START.length, membersEnd + 1));
      }
    } catch {
      return;
    }
    if (!Array.isArray(members)) return;
    if (this.deliverHere(members as string[], header.c, header.s, header.x, payload.slice(newline + 1)))
      this.observe.delivered((Date.now() - header.t) / 1000);
  }

  /** Writes the frame to every local socket of these members but `except`; false when none is here. */
  private deliverHere(
    members: readonly string[],
    conversationId: string | null,
    seq: number,
    except: string | null,
    frameText: string,
  ): boolean {
    let frame: Buffer | null = null;
    for (const member of members) {
      const conns = this.registry.connectionsOf(member);
      if (!conns) continue;
      frame ??= encodeTextFrame(frameText);
      if (conns instanceof Connection) {
        if (conns.id !== except) this.deliver(conns, conversationId, seq, frame);
      } else for (const conn of conns) if (conn.id !== except) this.deliver(conn, conversationId, seq, frame);
    }
    return frame !== null;
  }

  /** A member list from its JSON; a conversation's long list is parsed again only when it changed. */
  private parseMembers(conversationId: string | null, json: string): unknown {
    if (typeof conversationId !== 'string' || json.length < KEEP_LISTS_FROM * 4) return JSON.parse(json);
    const kept = this.parsedLists.get(conversationId);
    if (kept && kept.json === json) return kept.members;
    const members = JSON.parse(json) as unknown;
    if (!Array.isArray(members)) return members;
    if (!kept && this.parsedLists.size >= MAX_KEPT_LISTS) this.parsedLists.clear();
    this.parsedLists.set(conversationId, { json, members });
    return members;
  }

  private deliver(conn: Connection, conversationId: string | null, seq: number, frame: Buffer): void {
    // Stored messages wait while a replay runs (it may send them itself); other events go now.
    if (conn.replay && conversationId !== null) conn.replay.pending.push({ conversationId, seq, frame });
    else conn.sendFrame(frame);
  }

  private onAgents(payload: string): void {
    const newline = payload.indexOf('\n');
    let header: { x: string | null };
    try {
      header = JSON.parse(payload.slice(0, newline));
    } catch {
      return;
    }
    this.agentsHere(payload.slice(newline + 1), header.x);
  }

  private agentsHere(frameText: string, exceptAgent: string | null): void {
    let frame: Buffer | null = null;
    for (const conn of this.registry.agents) {
      if (exceptAgent !== null && conn.principal?.id === exceptAgent) continue;
      frame ??= encodeTextFrame(frameText);
      conn.sendFrame(frame);
    }
  }
}
