import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startServer, type TestServer } from './helpers/test-server.js';
import { TestClient } from './helpers/ws-client.js';

describe('TLS (wss:// served directly)', () => {
  let dir: string;
  let server: TestServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-tls-'));
    // A throwaway self-signed certificate for 127.0.0.1.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    server = await startServer({ server: { tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') } });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the REST API over https and authenticated sockets over wss', async () => {
    const ca = readFileSync(join(dir, 'cert.pem'));
    await server.gatehouse.services.auth.createAccount({
      kind: 'agent',
      username: 'tls-agent',
      password: 'pw-tls-123',
    });
    const body = JSON.stringify({ username: 'tls-agent', password: 'pw-tls-123' });
    const login = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(
        `${server.url.replace('http:', 'https:')}/api/v1/public/login`,
        { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(login.status, 200);
    const wss = `${server.wsUrl.replace('ws:', 'wss:')}/ws/chat`;
    const client = new TestClient(
      '',
      new WebSocket(wss, { headers: { authorization: `Bearer ${login.body.token}` }, ca }),
    );
    const connected = await client.next('connected');
    assert.equal(connected.body.user.id, 'tls-agent');
    // Plain ws:// to a TLS port does not get a WebSocket.
    const plain = TestClient.connect(`${server.wsUrl}/ws/chat`, {
      headers: { authorization: `Bearer ${login.body.token}` },
    });
    await assert.rejects(plain.opened);
    client.close();
    await client.closed;
  });
});
