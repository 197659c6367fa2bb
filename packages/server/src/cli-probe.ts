import { createInterface } from 'node:readline';
import { CLOSE_CODES, closeAdvice } from '@gatehouse/protocol';
import WebSocket from 'ws';
import { type CliCommand, type Flags, UsageError } from './cli-command.js';

const HANDSHAKE_TIMEOUT_MS = 10_000;

function headersFrom(flags: Flags): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of (flags.header as string[] | undefined) ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`--header "${h}" is not K:V`);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  if (typeof flags.token === 'string') headers.authorization = `Bearer ${flags.token.replace(/^bearer\s+/i, '')}`;
  return headers;
}

/**
 * Connects like a client and explains the outcome. With `--interactive` the socket stays open:
 * each line read from stdin is sent as one frame (like wscat), every frame received is printed,
 * and the end of stdin closes the socket with 1000.
 */
async function probe(args: string[], flags: Flags): Promise<number> {
  const url = args[0];
  if (!url) throw new UsageError('probe WS_URL');
  const interactive = flags.interactive === true;
  const headers = headersFrom(flags);
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    let refused = false;
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      console.log(`no answer within ${HANDSHAKE_TIMEOUT_MS / 1000} s`);
      ws.terminate();
      resolve(2);
    }, HANDSHAKE_TIMEOUT_MS);
    const settle = () => {
      clearTimeout(timer);
      timer = undefined;
    };
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        settle();
        console.log(`refused in the handshake: HTTP ${res.statusCode}`);
        console.log(`  code:    ${res.headers['x-websocket-error-code'] ?? '(none)'}`);
        console.log(`  message: ${res.headers['x-websocket-error-message'] ?? '(none)'}`);
        if (body) console.log(`  body:    ${body}`);
        resolve(1);
      });
    });
    ws.on('error', (err) => {
      settle();
      console.log(`connection failed: ${err.message}`);
      resolve(2);
    });
    ws.on('open', () => {
      if (!interactive) return;
      settle(); // the user decides when to stop
      console.log(`connected to ${url}; type one JSON frame per line, end with Ctrl-D`);
      const lines = createInterface({ input: process.stdin, terminal: false });
      lines.on('line', (line) => {
        const text = line.trim();
        if (!text || ws.readyState !== WebSocket.OPEN) return;
        try {
          JSON.parse(text);
        } catch {
          console.log('! not JSON; sent as typed');
        }
        ws.send(text);
      });
      lines.on('close', () => {
        if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      });
      ws.on('close', () => lines.close());
    });
    ws.on('message', (data) => {
      const text = data.toString();
      console.log(`< ${text}`);
      if (interactive) return;
      try {
        const frame = JSON.parse(text) as { type?: string };
        if (frame.type === 'connected' && flags.hello) ws.send(JSON.stringify({ type: 'hello', id: 'probe' }));
        else if (frame.type === 'connected' || frame.type === 'hello') ws.close(1000);
        // A refusal as the first frame (the root endpoint keeps the socket open for a login).
        else if (frame.type === 'error') {
          refused = true;
          ws.close(1000);
        }
      } catch {}
    });
    ws.on('close', (code, reason) => {
      settle();
      const info = CLOSE_CODES.find((c) => c.code === code);
      console.log(
        `closed: ${code} ${reason.toString()} — ${info?.description ?? 'unknown code'} (client should: ${closeAdvice(code)})`,
      );
      resolve(code === 1000 && !refused ? 0 : 1);
    });
  });
}

export const probeCommand: CliCommand = {
  name: 'probe',
  usage: ['probe WS_URL [--token T] [--header K:V]... [--hello | --interactive]'],
  options: {
    token: { type: 'string' },
    header: { type: 'string', multiple: true },
    hello: { type: 'boolean' },
    interactive: { type: 'boolean', short: 'i' },
  },
  run: probe,
};
