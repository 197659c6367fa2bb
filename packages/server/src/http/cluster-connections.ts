import { randomUUID } from 'node:crypto';
import type { PrincipalInfo } from '@gatehouse/protocol';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import type { ClusterState } from '../cluster/cluster-state.js';
import type { Connection } from '../gateway/connection.js';
import type { ConnectionRegistry } from '../gateway/connection-registry.js';

/** One socket as the admin API lists it. */
export interface ConnectionInfo {
  session_id: string;
  principal: PrincipalInfo | null;
  kind: PrincipalInfo['kind'] | null;
  device_type: string | null;
  device_id: string | null;
  client_id: string | null;
  endpoint: string;
  ip: string;
  node: string;
  connected_at: number;
  expires_at: number | null;
}

/** The sockets of every live node that answered, and the live nodes that did not in time. */
export interface ClusterConnections {
  connections: ConnectionInfo[];
  nodes: string[];
  missingNodes: string[];
}

const REQUESTS = 'admin-connections-ask';
const REPLIES = 'admin-connections-reply';

interface Ask {
  id: string;
  from: string;
  principal?: string;
}
interface Answer {
  id: string;
  to: string;
  node: string;
  connections: ConnectionInfo[];
}

export function describeConnection(conn: Connection, node: string): ConnectionInfo {
  return {
    session_id: conn.id,
    principal: conn.auth?.principal ?? null,
    kind: conn.auth?.principal.kind ?? null,
    device_type: conn.deviceType,
    device_id: conn.deviceId,
    client_id: conn.clientId,
    endpoint: conn.endpoint.path,
    ip: conn.ip,
    node,
    connected_at: conn.openedAt,
    expires_at: conn.auth?.expiresAt ?? null,
  };
}

/**
 * Lists the sockets of every node: asks them over the broker and waits until every live
 * node (from the cluster state) has answered, or `timeoutMs` passed — then the answer names
 * the nodes that were missing instead of failing. One node answers itself without the broker.
 */
export class ClusterConnectionsQuery {
  private readonly pending = new Map<string, { answers: Answer[]; done: () => void }>();
  private unsubscribe: (() => Promise<void>)[] = [];

  constructor(
    private readonly broker: Broker,
    private readonly cluster: ClusterState,
    private readonly registry: ConnectionRegistry,
    private readonly node: string,
    private readonly log: Logger,
    private readonly timeoutMs = 1000,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe.push(
      await this.broker.subscribe(REQUESTS, (payload) => {
        const ask = parse<Ask>(payload);
        if (!ask || ask.from === this.node) return;
        const answer: Answer = { id: ask.id, to: ask.from, node: this.node, connections: this.local(ask.principal) };
        this.broker.publish(REPLIES, JSON.stringify(answer)).catch((err) => {
          this.log.warn({ err }, 'admin: could not answer a connections query');
        });
      }),
      await this.broker.subscribe(REPLIES, (payload) => {
        const answer = parse<Answer>(payload);
        if (!answer || answer.to !== this.node) return;
        const waiting = this.pending.get(answer.id);
        if (!waiting) return;
        waiting.answers.push(answer);
        waiting.done();
      }),
    );
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribe.splice(0)) await unsubscribe().catch(() => {});
  }

  /** This node's open sockets, of one principal if given. */
  local(principal?: string): ConnectionInfo[] {
    const conns = principal ? this.registry.ofPrincipal(principal) : [...this.registry.all];
    return conns.filter((c) => !c.closed).map((c) => describeConnection(c, this.node));
  }

  async list(principal?: string): Promise<ClusterConnections> {
    const own = this.local(principal);
    const others = (await this.cluster.liveNodes()).filter((n) => n !== this.node);
    if (others.length === 0) return { connections: own, nodes: [this.node], missingNodes: [] };
    const id = randomUUID();
    const answers: Answer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const all = new Promise<void>((resolve) => {
      this.pending.set(id, {
        answers,
        done: () => {
          if (others.every((n) => answers.some((a) => a.node === n))) resolve();
        },
      });
      timer = setTimeout(resolve, this.timeoutMs);
    });
    try {
      const ask: Ask = { id, from: this.node, ...(principal ? { principal } : {}) };
      await this.broker.publish(REQUESTS, JSON.stringify(ask));
      await all;
    } catch (err) {
      this.log.warn({ err }, 'admin: could not ask the other nodes for their connections');
    } finally {
      clearTimeout(timer);
      this.pending.delete(id);
    }
    const answered = new Set(answers.map((a) => a.node));
    return {
      connections: [...own, ...answers.flatMap((a) => a.connections)],
      nodes: [this.node, ...answered],
      missingNodes: others.filter((n) => !answered.has(n)),
    };
  }
}

function parse<T>(payload: string): T | null {
  try {
    return JSON.parse(payload) as T;
  } catch {
    return null;
  }
}
