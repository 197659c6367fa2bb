import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const run = promisify(execFile);

async function gatehouse(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Starts `gatehouse serve` and resolves with its URL and everything it printed up to the ready lines. */
function serve(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string; output: string }> {
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--data-dir', dataDir], {
    env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${output}`)), 15_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = /serving on (http:\/\/\S+)/.exec(output)?.[1];
      // The demo lines follow the first line; wait for the last one on a first start.
      if (url && (output.includes('gatehouse probe') || !output.includes('First start'))) {
        setTimeout(() => {
          clearTimeout(timer);
          resolve({ child, url, output });
        }, 50);
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${output}`)));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('the gatehouse CLI', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('serves on first start with a demo agent, an app key and curl lines that work, and keeps its secrets private', async () => {
    const { child, url, output } = await serve(dataDir);
    try {
      assert.match(output, /Admin key \(shown once/);
      const password = /agent: demo-agent \/ (\S+)/.exec(output)?.[1];
      const appKey = /app key: (gak_\S+)/.exec(output)?.[1];
      assert.ok(password && appKey, output);
      const login = await fetch(`${url}/api/v1/public/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'demo-agent', password }),
      });
      assert.equal(login.status, 200);
      const user = await fetch(`${url}/openapi/v1/user/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-app-key': appKey },
        body: JSON.stringify({ id: 'alice', nickname: 'Alice', device: 'im_web' }),
      });
      assert.equal(user.status, 200);
      for (const file of ['keys.json', 'admin-key']) assert.equal(statSync(join(dataDir, file)).mode & 0o077, 0, file);
    } finally {
      assert.equal(await stop(child), 0);
    }
    // The second start reuses the data folder: no new admin key, no demo lines.
    const again = await serve(dataDir);
    assert.doesNotMatch(again.output, /Admin key|First start/);
    await stop(again.child);
  });

  it('adds users, creates app keys, issues and decodes tokens against the data folder', async () => {
    const added = await gatehouse([
      'user',
      'add',
      '--kind',
      'agent',
      '--username',
      'cli-agent',
      '--password',
      'pw-123456',
      '--name',
      'CLI Agent',
      '--data-dir',
      dataDir,
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /created agent cli-agent \(CLI Agent\)/);
    const duplicate = await gatehouse([
      'user',
      'add',
      '--kind',
      'agent',
      '--username',
      'cli-agent',
      '--password',
      'x',
      '--data-dir',
      dataDir,
    ]);
    assert.notEqual(duplicate.code, 0);
    assert.match(duplicate.stderr, /already exists/);

    const key = await gatehouse(['app-key', 'create', '--name', 'shop', '--data-dir', dataDir]);
    assert.equal(key.code, 0, key.stderr);
    assert.match(key.stdout.trim().split('\n').at(-1) ?? '', /^gak_[A-Za-z0-9_-]{20,}$/);

    const issued = await gatehouse([
      'token',
      'issue',
      '--sub',
      'cli-agent',
      '--kind',
      'agent',
      '--ttl',
      '1h',
      '--data-dir',
      dataDir,
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    const decoded = await gatehouse(['token', 'decode', token]);
    assert.equal(decoded.code, 0);
    const claims = JSON.parse(decoded.stdout.slice(0, decoded.stdout.lastIndexOf('}') + 1)).payload;
    assert.equal(claims.sub, 'cli-agent');
    assert.equal(claims.kind, 'agent');
    assert.equal(claims.exp - claims.iat, 3600);
    assert.match(decoded.stdout, /expires in 3[56]\d\d s/);

    // The issued token is accepted by a server on the same data folder.
    const { child, url } = await serve(dataDir);
    try {
      const probe = await gatehouse(['probe', `${url.replace('http', 'ws')}/ws/chat`, '--token', token, '--hello']);
      assert.equal(probe.code, 0, probe.stdout);
      assert.match(probe.stdout, /Connected and authenticated successfully/);
      assert.match(probe.stdout, /"type":"hello"/);
      const refused = await gatehouse(['probe', `${url.replace('http', 'ws')}/ws`, '--token', token]);
      assert.equal(refused.code, 1);
      assert.match(refused.stdout, /HTTP 403/);
      assert.match(refused.stdout, /code: +FORBIDDEN/);
      // On / a bad token is refused by the first frame while the socket stays open for a login.
      const badRoot = await gatehouse(['probe', `${url.replace('http', 'ws')}/`, '--token', `${token}x`]);
      assert.equal(badRoot.code, 1, badRoot.stdout);
      assert.match(badRoot.stdout, /"error":"TOKEN_INVALID"/);
    } finally {
      await stop(child);
    }
  });

  it('runs through the installed bin shim', async () => {
    const shim = fileURLToPath(new URL('../../bin/gatehouse.js', import.meta.url));
    const { stdout } = await run(process.execPath, [shim, '--help']);
    assert.match(stdout, /gatehouse serve/);
  });

  it('rejects bad usage with exit code 64 and a message', async () => {
    const res = await gatehouse([
      'user',
      'add',
      '--kind',
      'wizard',
      '--username',
      'u',
      '--password',
      'p',
      '--data-dir',
      dataDir,
    ]);
    assert.equal(res.code, 64);
    assert.match(res.stderr, /--kind must be agent or user/);
    const unknown = await gatehouse(['frobnicate']);
    assert.equal(unknown.code, 64);
    const badEnv = await gatehouse(['app-key', 'create', '--name', 'x', '--data-dir', dataDir], {
      GATEHOUSE_SERVER_PORT: 'eighty',
    });
    assert.equal(badEnv.code, 1);
    assert.match(badEnv.stderr, /GATEHOUSE_SERVER_PORT/);
    assert.ok(readFileSync(join(dataDir, 'keys.json'), 'utf8').includes('HS256'));
  });
});
