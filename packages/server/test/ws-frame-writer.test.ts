import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import * as wsModule from 'ws';
import { encodeTextFrame } from '../src/gateway/frame-writer.js';

/**
 * frame-writer.ts encodes frames with ws's undeclared `Sender.frame`. These tests fail loudly
 * when a ws update changes that internal: its presence, its output (checked byte for byte
 * against RFC 6455 §5.2), and the version range package.json pins for it.
 */

/** An unmasked text frame with FIN set, written from RFC 6455 §5.2 alone. */
function rfc6455TextFrame(payload: Buffer): Buffer {
  const length = payload.length;
  let header: Buffer;
  if (length <= 125) header = Buffer.from([0x81, length]);
  else if (length <= 0xffff) {
    header = Buffer.alloc(4);
    header[0] = 0x81;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

describe("frame writer on ws's Sender.frame", () => {
  it('finds Sender.frame on the ws module', () => {
    const sender = (wsModule as unknown as { Sender?: { frame?: unknown } }).Sender;
    assert.equal(typeof sender?.frame, 'function', 'ws.Sender.frame is gone: see src/gateway/frame-writer.ts');
  });

  it('encodes text frames of every length class exactly as RFC 6455 says', () => {
    for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
      const payload = Buffer.alloc(length, 0x61);
      const encoded = encodeTextFrame(payload);
      assert.ok(Buffer.isBuffer(encoded), `length ${length}: a Buffer`);
      assert.ok(encoded.equals(rfc6455TextFrame(payload)), `length ${length}: bytes differ from RFC 6455`);
    }
  });

  it('encodes strings as UTF-8 and leaves the payload buffer untouched (no masking)', () => {
    const text = JSON.stringify({ type: 'message', text: 'héllo €' });
    assert.ok(encodeTextFrame(text).equals(rfc6455TextFrame(Buffer.from(text, 'utf8'))));
    const payload = Buffer.from('{"a":1}');
    const copy = Buffer.from(payload);
    encodeTextFrame(payload);
    assert.ok(payload.equals(copy));
  });

  it('runs on the ws version package.json pins', () => {
    const require = createRequire(import.meta.url);
    const installed = (require('ws/package.json') as { version: string }).version;
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const range = manifest.dependencies.ws as string;
    const pinned = /^~(\d+)\.(\d+)\.\d+$/.exec(range);
    assert.ok(pinned, `ws is pinned to one minor version with ~ (found "${range}")`);
    const [major, minor] = installed.split('.');
    assert.deepEqual([major, minor], [pinned[1], pinned[2]], `installed ws ${installed} is outside ${range}`);
  });
});
