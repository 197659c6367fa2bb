import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeProtectedHeader } from 'jose';
import { brokerKind, shouldSeedDemo, storeKind } from '../src/cli-serve.js';
import { systemClock } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { type KeysFile, keyRingFrom } from '../src/tokens/signing-keys.js';
import { TokenService } from '../src/tokens/token-service.js';
import { passwordUser } from './helpers/auth-fixtures.js';
import { startServer } from './helpers/test-server.js';

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

/**
 * Starts `gatehouse serve` (stdout and stderr are pipes, not a terminal) under `umask`, and
 * resolves once its "listening" log line names the URL. `lines` are the JSON log lines so far.
 */
function serve(
  dataDir: string,
  env: Record<string, string> = {},
  umask = '022',
  // 'listening': resolve on the first log line, while the first start may still be under way.
  until: 'ready' | 'listening' = 'ready',
): Promise<{ child: ChildProcess; url: string; stdout: () => string; stderr: () => string }> {
  const child = spawn(
    '/bin/sh',
    ['-c', `umask ${umask} && exec "$0" "$@"`, process.execPath, cli, 'serve', '--port', '0', '--data-dir', dataDir],
    { env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stdout}${stderr}`)), 15_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // The banner file is written after the "listening" line: wait for the line that follows it.
      const listening = stdout.includes('gatehouse listening');
      const ready = stdout.includes('"first start') || (listening && (until === 'listening' || !firstStart(dataDir)));
      const url = /"url":"(http:\/\/[^"]+)"/.exec(stdout)?.[1];
      if (url && ready) {
        clearTimeout(timer);
        resolve({ child, url, stdout: () => stdout, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stdout}${stderr}`)));
  });
}

/** True until the first start wrote its banner file. */
const firstStart = (dataDir: string) => !existsSync(join(dataDir, 'first-start.txt'));

/** Every line of `text` is one JSON object (a log line). */
function assertJsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return assert.fail(`stdout has a line that is not JSON: ${line}`);
      }
    });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    // 'close', not 'exit': the pipes are read to their end by then, so stdout() holds every line.
    child.once('close', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('the gatehouse CLI', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('serves on first start with a demo agent and an app key, written to a private banner file, never to the log', async () => {
    // umask 000 would leave new files world-writable: the modes must not depend on it.
    const { child, url, stdout, stderr } = await serve(dataDir, {}, '000');
    try {
      const banner = readFileSync(join(dataDir, 'first-start.txt'), 'utf8');
      const adminKey = readFileSync(join(dataDir, 'admin-key'), 'utf8').trim();
      assert.ok(banner.includes(adminKey), banner);
      const password = /agent: demo-agent \/ (\S+)/.exec(banner)?.[1];
      const appKey = /app key: (gak_\S+)/.exec(banner)?.[1];
      assert.ok(password && appKey, banner);
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
      // stdout is the JSON log and nothing else; no secret in it or on stderr (not a terminal).
      const lines = assertJsonLines(stdout());
      const listening = lines.find((l) => l.msg === 'gatehouse listening');
      // The web pages: their URLs in the log line and the banner, and they answer.
      assert.equal(listening?.consoleUrl, `${url}/console/`);
      assert.equal(listening?.demoUrl, `${url}/demo/`);
      assert.ok(banner.includes(`Agent console: ${url}/console/`), banner);
      assert.ok(banner.includes(`Demo page with the chat widget: ${url}/demo/`), banner);
      assert.equal((await fetch(`${url}/console/`)).status, 200);
      for (const secret of [adminKey, password, appKey]) {
        assert.ok(!stdout().includes(secret), 'a secret is in the log');
        assert.ok(!stderr().includes(secret), 'a secret is on stderr, which is not a terminal');
      }
      assert.equal(statSync(dataDir).mode & 0o777, 0o700, 'data folder');
      for (const file of [
        'keys.json',
        'admin-key',
        'first-start.txt',
        'gatehouse.db',
        'gatehouse.db-wal',
        'gatehouse.db-shm',
      ])
        assert.equal(statSync(join(dataDir, file)).mode & 0o777, 0o600, file);
    } finally {
      assert.equal(await stop(child), 0);
    }
    // The second start reuses the data folder: no new admin key, no demo data, no banner.
    const before = readFileSync(join(dataDir, 'first-start.txt'), 'utf8');
    const again = await serve(dataDir);
    try {
      assert.doesNotMatch(again.stdout(), /first start|demo agent/);
      assert.equal(readFileSync(join(dataDir, 'first-start.txt'), 'utf8'), before);
    } finally {
      await stop(again.child);
    }
  });

  it('writes the banner to the file the operator names, and seeds no demo data when told not to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-banner-'));
    const bannerFile = join(dir, 'banner.txt');
    try {
      const { child, stdout } = await serve(join(dir, 'data'), {
        GATEHOUSE_BANNER_FILE: bannerFile,
        GATEHOUSE_DEMO_SEED: 'false',
      });
      await stop(child);
      const banner = readFileSync(bannerFile, 'utf8');
      assert.match(banner, /Admin key/);
      assert.doesNotMatch(banner, /demo-agent/);
      assert.doesNotMatch(stdout(), /demo agent/);
      assert.equal(statSync(bannerFile).mode & 0o777, 0o600);
      assert.ok(!existsSync(join(dir, 'data', 'first-start.txt')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logs its start (URL, node, store and broker kinds) and its stop (signal) at info', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-stop-'));
    try {
      // Stopped as soon as it says it listens: the first start (banner file) is still under way,
      // and the signal must wait for it rather than kill the process (a CI run caught that race).
      const { child, url, stdout } = await serve(
        join(dir, 'data'),
        { GATEHOUSE_DEMO_SEED: 'false', GATEHOUSE_NODE_ID: 'log-node-1' },
        '022',
        'listening',
      );
      assert.equal(await stop(child), 0, stdout());
      assert.ok(existsSync(join(dir, 'data', 'first-start.txt')), 'the first start was finished');
      const lines = assertJsonLines(stdout());
      const listening = lines.find((l) => l.msg === 'gatehouse listening');
      assert.ok(listening, stdout());
      assert.equal(listening.level, 30);
      assert.equal(listening.url, url);
      assert.equal(listening.node, 'log-node-1');
      assert.equal(listening.store, 'sqlite');
      assert.equal(listening.broker, 'memory');
      const stopping = lines.find((l) => l.msg === 'gatehouse stopping');
      assert.ok(stopping, stdout());
      assert.equal(stopping.level, 30);
      assert.equal(stopping.signal, 'SIGTERM');
      assert.equal(stopping.node, 'log-node-1');
      const stopped = lines.find((l) => l.msg === 'gatehouse stopped');
      assert.ok(stopped, stdout());
      assert.equal(stopped.signal, 'SIGTERM');
      assert.equal(typeof stopped.durationMs, 'number');
      assert.ok(lines.indexOf(stopping) < lines.indexOf(stopped));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stop signal during the first start (demo seed under way) lets it finish, then stops cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-early-stop-'));
    try {
      // The demo agent's password is hashed after "gatehouse listening": the signal lands there.
      const { child, stdout, stderr } = await serve(join(dir, 'data'), {}, '022', 'listening');
      assert.equal(await stop(child), 0, stdout() + stderr());
      assert.match(readFileSync(join(dir, 'data', 'first-start.txt'), 'utf8'), /agent: demo-agent \/ \S+/);
      const messages = assertJsonLines(stdout()).map((l) => l.msg);
      assert.ok(messages.indexOf('gatehouse stopping') > messages.indexOf('demo agent and demo app key created'));
      assert.ok(messages.includes('gatehouse stopped'), stdout());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the store and broker by kind in the log, never by URL (it may hold a password)', () => {
    assert.equal(storeKind(''), 'sqlite');
    assert.equal(storeKind('sqlite:/var/lib/gatehouse/g.db'), 'sqlite');
    assert.equal(storeKind('postgres://gatehouse:s3cret@db/gatehouse'), 'postgresql');
    assert.equal(storeKind('postgresql://db/gatehouse'), 'postgresql');
    assert.equal(brokerKind(''), 'memory');
    assert.equal(brokerKind('memory://'), 'memory');
    assert.equal(brokerKind('redis://:s3cret@cache:6379'), 'redis');
    assert.equal(brokerKind('rediss://cache:6380'), 'redis');
    assert.equal(brokerKind('nats://user:s3cret@nats:4222'), 'nats');
  });

  it('seeds demo data by default only on the embedded store, never on PostgreSQL unless asked', () => {
    assert.equal(shouldSeedDemo(loadConfig()), true);
    assert.equal(shouldSeedDemo(loadConfig({ overrides: { store: { url: 'sqlite:/tmp/x.db' } } })), true);
    assert.equal(shouldSeedDemo(loadConfig({ overrides: { store: { url: 'postgres://db/gatehouse' } } })), false);
    assert.equal(shouldSeedDemo(loadConfig({ env: { GATEHOUSE_STORE_URL: 'postgresql://db/g' } })), false);
    const asked = loadConfig({ overrides: { store: { url: 'postgres://db/gatehouse' }, demo: { seed: true } } });
    assert.equal(shouldSeedDemo(asked), true);
    assert.equal(shouldSeedDemo(loadConfig({ overrides: { demo: { seed: false } } })), false);
  });

  it('stops with every configuration problem on stderr, and warns about misspelled variables in the log', async () => {
    const bad = await gatehouse(['serve', '--port', '0', '--data-dir', dataDir], {
      GATEHOUSE_LIMITS_MESSAGES_PER_SECOND: 'abc',
      GATEHOUSE_LIMITS_MAX_CONNECTIONS: '-1',
    });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /limits\.messagesPerSecond \(variable GATEHOUSE_LIMITS_MESSAGES_PER_SECOND\)/);
    assert.match(bad.stderr, /limits\.maxConnections \(variable GATEHOUSE_LIMITS_MAX_CONNECTIONS\)/);
    const { child, stdout } = await serve(dataDir, { GATEHOUSE_LIMITS_MESAGES_PER_SECOND: '5' });
    await stop(child);
    const warning = assertJsonLines(stdout()).find((l) =>
      String(l.msg).includes('GATEHOUSE_LIMITS_MESAGES_PER_SECOND'),
    );
    assert.equal(warning?.level, 40);
    assert.match(String(warning?.msg), /did you mean GATEHOUSE_LIMITS_MESSAGES_PER_SECOND/);
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

describe('gatehouse keys', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-keys-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const service = (file: string, algorithms: string[]) =>
    new TokenService(
      keyRingFrom(JSON.parse(readFileSync(file, 'utf8')) as KeysFile, algorithms),
      { issuer: 'gatehouse', audience: 'gatehouse', algorithms, clockToleranceMs: 5000 },
      systemClock,
    );
  const claims = { sub: 'alice', kind: 'user' as const, sid: 's1', name: 'Alice', ver: 0 };

  for (const alg of ['HS256', 'EdDSA', 'ES256', 'RS256']) {
    it(`generates an ${alg} keys file (mode 0600) whose key signs and verifies tokens`, async () => {
      const out = join(dir, `${alg}.json`);
      const res = await gatehouse(['keys', 'generate', '--alg', alg, '--out', out]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const tokens = service(out, [alg]);
      const { token } = await tokens.signAccessToken(claims, 60_000);
      const verified = tokens.verifyAccessToken(token);
      assert.equal(verified.ok, true, JSON.stringify(verified));
      // An existing file is never overwritten.
      const again = await gatehouse(['keys', 'generate', '--alg', alg, '--out', out]);
      assert.equal(again.code, 64);
      assert.match(again.stderr, /exists/);
    });
  }

  it('rotates: a new signing kid, old tokens still verify, and the retired key says when it may go', async () => {
    const file = join(dir, 'rotate.json');
    assert.equal((await gatehouse(['keys', 'generate', '--out', file])).code, 0);
    const before = service(file, ['HS256']);
    const old = await before.signAccessToken(claims, 60_000);
    const oldKid = (JSON.parse(readFileSync(file, 'utf8')) as KeysFile).signingKid;

    const res = await gatehouse(['keys', 'rotate', '--keys-file', file], { GATEHOUSE_TOKENS_TTL_USER: '40d' });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const rotated = JSON.parse(readFileSync(file, 'utf8')) as KeysFile;
    assert.notEqual(rotated.signingKid, oldKid);
    const retired = rotated.keys.find((k) => k.kid === oldKid);
    assert.ok(retired?.retiredAt && retired.removableAfter);
    // The longest token lifetime (40 days here) plus the clock tolerance.
    assert.equal(Date.parse(retired.removableAfter) - Date.parse(retired.retiredAt), 40 * 86_400_000 + 5000);

    const after = service(file, ['HS256']);
    assert.equal(after.verifyAccessToken(old.token).ok, true, 'a token of the retired key still verifies');
    const fresh = await after.signAccessToken(claims, 60_000);
    assert.equal(decodeProtectedHeader(fresh.token).kid, rotated.signingKid);
    assert.equal(before.verifyAccessToken(fresh.token).ok, false, 'the old key ring does not know the new kid');
  });

  it('rotates in two steps: --prepare adds a verify-only key, the next rotate makes it sign', async () => {
    const file = join(dir, 'prepare.json');
    assert.equal((await gatehouse(['keys', 'generate', '--alg', 'EdDSA', '--out', file])).code, 0);
    const first = (JSON.parse(readFileSync(file, 'utf8')) as KeysFile).signingKid;
    assert.equal((await gatehouse(['keys', 'rotate', '--keys-file', file, '--prepare'])).code, 0);
    const prepared = JSON.parse(readFileSync(file, 'utf8')) as KeysFile;
    assert.equal(prepared.signingKid, first, 'still signing with the first key');
    const next = prepared.keys.find((k) => k.kid !== first);
    assert.ok(next?.preparedAt);
    // Nodes holding the prepared file already accept tokens of the next key.
    const { token } = await service(file, ['EdDSA']).signAccessToken(claims, 60_000);
    assert.equal((await gatehouse(['keys', 'rotate', '--keys-file', file])).code, 0);
    const active = JSON.parse(readFileSync(file, 'utf8')) as KeysFile;
    assert.equal(active.signingKid, next.kid);
    assert.equal(active.keys.length, 2);
    assert.equal(service(file, ['EdDSA']).verifyAccessToken(token).ok, true);
  });
});

describe('gatehouse probe --interactive', () => {
  it('keeps the socket open, sends each line typed as a frame, prints every frame, and closes at the end of input', async () => {
    const server = await startServer();
    try {
      const { token } = await passwordUser(server, 'probe-user');
      const child = spawn(process.execPath, [cli, 'probe', `${server.wsUrl}/ws`, '--token', token, '--interactive'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      const seen = (pattern: RegExp) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ${pattern} in: ${stdout}`)), 10_000);
          const check = () => {
            if (pattern.test(stdout)) {
              clearTimeout(timer);
              child.stdout?.off('data', check);
              resolve();
            }
          };
          child.stdout?.on('data', check);
          check();
        });
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      // 'close': stdout is read to its end by then.
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      await seen(/< \{"type":"connected"/);
      // Still open after `connected`: what is typed goes out, and the answers come back.
      child.stdin?.write('{"type":"hello","id":"p1"}\n');
      await seen(/< \{[^\n]*"type":"hello"[^\n]*"p1"/);
      child.stdin?.write('{"type":"whoami","id":"p2"}\n');
      await seen(/< \{[^\n]*"p2"/);
      child.stdin?.write('not json\n');
      await seen(/! not JSON; sent as typed/);
      child.stdin?.end();
      assert.equal(await exited, 0, stdout);
      assert.match(stdout, /closed: 1000/);
    } finally {
      await server.close();
    }
  });
});
