import type { ClientStatus, GatehouseClient } from '@gatehouse/client';

/** What a page shows about its connection, derived from the SDK's events only. */
export interface ConnectionState {
  status: ClientStatus;
  /** While `reconnecting`: when the next attempt starts (ms since the epoch). */
  retryAt: number;
  /** The last close or error reason, shown with a stop. */
  reason: string;
}

/** Follows the client's status, reconnect delay and last error; returns the unsubscribe function. */
export function watchConnection(client: GatehouseClient, onChange: (state: ConnectionState) => void): () => void {
  let state: ConnectionState = { status: client.status, retryAt: 0, reason: '' };
  const set = (next: Partial<ConnectionState>) => {
    state = { ...state, ...next };
    onChange(state);
  };
  const offs = [
    client.on('status', (status) => set({ status, ...(status === 'connected' ? { reason: '' } : {}) })),
    client.on('reconnecting', (info) =>
      set({ status: 'reconnecting', retryAt: Date.now() + info.delay, reason: info.reason || String(info.code) }),
    ),
    client.on('disconnected', (info) => {
      if (!info.willReconnect) set({ reason: info.reason || String(info.code) });
    }),
    client.on('error', (err) => set({ reason: err.code })),
  ];
  return () => {
    for (const off of offs) off();
  };
}
