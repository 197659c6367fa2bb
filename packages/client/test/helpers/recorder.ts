import type { ChatMessage } from '@gatehouse/protocol';
import type { ClientStatus, CloseInfo, GatehouseClient, GatehouseClientError } from '../../src/index.js';

/** Everything a client reported, in order, for assertions. */
export interface Recording {
  statuses: ClientStatus[];
  reconnecting: (CloseInfo & { attempt: number; delay: number })[];
  connected: number;
  messages: ChatMessage[];
  errors: GatehouseClientError[];
  events: { type: string; [k: string]: unknown }[];
  refreshed: number;
}

export function record(client: GatehouseClient): Recording {
  const r: Recording = {
    statuses: [],
    reconnecting: [],
    connected: 0,
    messages: [],
    errors: [],
    events: [],
    refreshed: 0,
  };
  client.on('status', (s) => r.statuses.push(s));
  client.on('reconnecting', (info) => r.reconnecting.push(info));
  client.on('connected', () => r.connected++);
  client.on('message', (m) => {
    r.messages.push(m);
  });
  client.on('error', (e) => r.errors.push(e));
  client.on('event', (e) => r.events.push(e as any));
  client.on('tokenRefreshed', () => r.refreshed++);
  return r;
}

/** The (conversation, seq) pairs of messages, as strings, to compare without order noise. */
export const keys = (messages: ChatMessage[]) => messages.map((m) => `${m.conversation_id}#${m.seq}`);
