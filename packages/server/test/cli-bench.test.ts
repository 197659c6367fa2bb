import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createAppKey, startServer, type TestServer } from './helpers/test-server.js';

const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const run = promisify(execFile);

async function gatehouse(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('gatehouse bench', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('loads a local server with SDK clients (admin key) and prints connect rate, latency and errors', async () => {
    const { code, stdout, stderr } = await gatehouse([
      'bench',
      server.url,
      '--admin-key',
      server.adminKey,
      '--clients',
      '6',
      '--rate',
      '30',
      '--duration',
      '1s',
    ]);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /^connected 6 clients in [\d.]+ s \(\d+\/s\)$/m);
    const counts = /^messages: sent (\d+), acked (\d+), received (\d+)$/m.exec(stdout);
    assert.ok(counts, stdout);
    const [sent, acked, received] = counts.slice(1).map(Number) as [number, number, number];
    assert.ok(sent > 0);
    assert.equal(acked, sent);
    assert.equal(received, acked);
    assert.match(stdout, /^delivery latency: p50 [\d.]+ ms, p99 [\d.]+ ms$/m);
    assert.match(stdout, /^errors: none$/m);
    assert.match(stderr, /sent \d+ {2}acked/, 'a progress line');
  });

  it('takes an app key too, and reports refusals by close code', async () => {
    const appKey = await createAppKey(server);
    const ok = await gatehouse(['bench', server.url, '--app-key', appKey, '--clients', '2', '--duration', '1s']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const refused = await gatehouse(['bench', server.url, '--app-key', appKey, '--clients', '2', '--path', '/ws/chat']);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /could not connect the clients: .*forbidden/);
    assert.match(refused.stdout, /^ {2}4403 FORBIDDEN \(stopped\): \d+$/m);
  });

  it('explains its usage when the URL or the key is missing (exit 2)', async () => {
    const noKey = await gatehouse(['bench', server.url]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stdout, /give --app-key or --admin-key/);
    const noUrl = await gatehouse(['bench']);
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stdout, /URL is required/);
  });
});
