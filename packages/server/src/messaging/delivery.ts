import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import { Connection } from '../gateway/connection.js';
import type { ConnectionRegistry } from '../gateway/connection-registry.js';
import { encodeTextFrame } from '../gateway/frame-writer.js';

const DELIVER_TOPIC = 'deliver';
const AGENTS_TOPIC = 'agents';

/**
 * Live fan-out. A stored message is published once to every node as
 * `{"m":[member ids],"c":conversation,"s":seq,"x":sender connection}\n<frame JSON>`
 * (agent notices as `{"x":agent to leave out}\n<frame JSON>` on their own topic);
 * each node encodes the frame once and writes the same bytes to every local socket of
 * every member. Nothing here is durable: a node that misses a publication leaves the
 * message to the cursor replay on the device's next authentication.
 */
export class Delivery {
  private readonly unsubscribers: (() => Promise<void>)[] = [];

  constructor(
    private readonly broker: Broker,
    private readonly registry: ConnectionRegistry,
    private readonly log: Logger,
    private readonly observe: { publish(seconds: number): void; delivered(seconds: number): void } = {
      publish() {},
      delivered() {},
    },
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
    const sentAt = Date.now();
    const header = JSON.stringify({ m: members, c: conversationId, s: seq, x: exceptConnection, t: sentAt });
    this.broker.publish(DELIVER_TOPIC, `${header}\n${frame}`).then(
      () => this.observe.publish((Date.now() - sentAt) / 1000),
      (err) => this.log.warn({ err }, 'live delivery publish failed; cursor replay will deliver'),
    );
  }

  /** Sends an event frame (not a stored message) to every device of these principals on every node. */
  publishEvent(principals: string[], frame: string): void {
    const header = JSON.stringify({ m: principals, c: null, s: 0, x: null, t: Date.now() });
    this.broker
      .publish(DELIVER_TOPIC, `${header}\n${frame}`)
      .catch((err) => this.log.warn({ err }, 'event publish failed'));
  }

  /** Sends a frame to every online agent on every node, except the devices of `exceptAgent`. */
  publishToAgents(frame: string, exceptAgent: string | null = null): void {
    this.broker
      .publish(AGENTS_TOPIC, `${JSON.stringify({ x: exceptAgent })}\n${frame}`)
      .catch((err) => this.log.warn({ err }, 'agent notification failed'));
  }

  private onDeliver(payload: string): void {
    const newline = payload.indexOf('\n');
    let header: { m: string[]; c: string | null; s: number; x: string | null; t: number };
    try {
      header = JSON.parse(payload.slice(0, newline));
    } catch {
      return;
    }
    let frame: Buffer | null = null;
    for (const member of header.m) {
      const conns = this.registry.connectionsOf(member);
      if (!conns) continue;
      frame ??= encodeTextFrame(payload.slice(newline + 1));
      if (conns instanceof Connection) {
        if (conns.id !== header.x) this.deliver(conns, header.c, header.s, frame);
      } else for (const conn of conns) if (conn.id !== header.x) this.deliver(conn, header.c, header.s, frame);
    }
    if (frame) this.observe.delivered((Date.now() - header.t) / 1000);
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
    let frame: Buffer | null = null;
    for (const conn of this.registry.agents) {
      if (header.x !== null && conn.principal?.id === header.x) continue;
      frame ??= encodeTextFrame(payload.slice(newline + 1));
      conn.sendFrame(frame);
    }
  }
}
