import assert from 'node:assert/strict';
import { api, createAppKey, type TestServer, userToken } from './test-server.js';
import { type Frame, TestClient } from './ws-client.js';

/**
 * Helpers for the messaging tests: devices that connect and finish their offline replay,
 * message requests, and a set of clients closed together at the end of a test.
 */

/** A connected, authenticated device with the offline replay it received on authentication. */
export interface Device {
  client: TestClient;
  connected: Frame;
  /** The `offline_message` frames that came before `offline_messages_complete`, in arrival order. */
  offline: Frame[];
  complete: Frame;
}

/** Removes and returns the queued frames of a type, in arrival order. */
export function takeQueued(client: TestClient, type: string): Frame[] {
  const taken = client.frames.filter((f) => f.type === type);
  const rest = client.frames.filter((f) => f.type !== type);
  client.frames.length = 0;
  client.frames.push(...rest);
  return taken;
}

/** Closes every client it opened, waiting for each to be closed. */
export class Clients {
  private readonly open: TestClient[] = [];

  track(client: TestClient): TestClient {
    this.open.push(client);
    return client;
  }

  /**
   * Connects with the token in the Authorization header (and a `deviceType` header when
   * given), then waits for `connected` and the end of the offline replay.
   */
  async device(server: { wsUrl: string }, path: string, token: string, deviceType?: string): Promise<Device> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (deviceType) headers.devicetype = deviceType;
    const client = this.track(TestClient.connect(`${server.wsUrl}${path}`, { headers }));
    const connected = await client.next('connected');
    assert.equal(connected.body?.message, 'Connected and authenticated successfully', JSON.stringify(connected));
    const complete = await client.next('offline_messages_complete');
    return { client, connected, offline: takeQueued(client, 'offline_message'), complete };
  }

  async closeAll(): Promise<void> {
    const clients = this.open.splice(0);
    await Promise.all(
      clients.map(async (client) => {
        if (client.ws.readyState === client.ws.CLOSED) return;
        client.ws.terminate();
        await client.closed;
      }),
    );
  }
}

/** Sends a `message` frame and resolves with its reply (type `ack`, success or error). */
export function sendMessage(client: TestClient, fields: Record<string, unknown>): Promise<Frame> {
  return client.request({ type: 'message', ...fields });
}

/** Sends a `message` and asserts it was acknowledged; resolves with the ack body. */
export async function sendOk(
  client: TestClient,
  fields: Record<string, unknown>,
): Promise<{ message_id: string; conversation_id: string; seq: number; ts: number }> {
  const reply = await sendMessage(client, fields);
  assert.equal(reply.type, 'ack', JSON.stringify(reply));
  assert.equal(reply.code, 200, JSON.stringify(reply));
  return reply.body;
}

/** An app key and one open-API token per user id (each for `device`). */
export async function imUsers(
  server: TestServer,
  ids: string[],
  device = 'im_web',
): Promise<{ appKey: string; tokens: Record<string, string> }> {
  const appKey = await createAppKey(server, `app for ${ids.join(',')}`);
  const tokens: Record<string, string> = {};
  for (const id of ids) tokens[id] = await userToken(server, appKey, id, device);
  return { appKey, tokens };
}

/**
 * Makes users with fresh ids on every call (each name gets a new run number), so no test
 * sees another test's conversations; `server` is read at call time (set in `before`).
 */
export function freshUsers(server: () => TestServer) {
  let run = 0;
  return async (...names: string[]) => {
    run++;
    const ids = names.map((n) => `${n}-${run}`);
    const { appKey, tokens } = await imUsers(server(), ids);
    return { appKey, ids, tokens: ids.map((id) => tokens[id] as string) };
  };
}

/** A group created with the admin key; resolves with its id. */
export async function createGroup(server: TestServer, members: string[], name = 'group'): Promise<string> {
  const res = await api(server, 'POST', '/api/v1/conversations', {
    headers: { 'x-admin-key': server.adminKey },
    body: { kind: 'group', name, members },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
}

/** Waits for `count` frames of `type` (in arrival order). */
export async function nextFrames(client: TestClient, type: string, count: number): Promise<Frame[]> {
  const out: Frame[] = [];
  for (let i = 0; i < count; i++) out.push(await client.next(type));
  return out;
}
