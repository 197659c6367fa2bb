import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { messageAckReply, okReply, type RequestFrame } from '../src/gateway/replies.js';

describe('messageAckReply', () => {
  const body = {
    message_id: '0b6c3c5e-2a4e-4d3a-9d55-1f6f2b8f3a10',
    conversation_id: 'gr_1',
    seq: 7,
    ts: 1_764_000_000_123,
  };

  it('writes the same bytes as okReply(request, "ack", body) for every way a request can be echoed', () => {
    const requests: RequestFrame[] = [
      { type: 'message' },
      { type: 'message', id: 3 },
      { type: 'message', id: 'r-1' },
      { type: 'message', id: 'quote " backslash \\ newline \n emoji 🙂 nul \u0000' },
      { type: 'message', cmd_id: 2002 },
      { type: 'message', id: 1.5e21, cmd_id: -0 },
      { type: 'message', id: '', cmd_id: 0 },
    ];
    for (const request of requests)
      for (const conversationId of ['gr_1', 'dm_"odd"\\id', 'émoji 🙂 \u2028'])
        assert.equal(
          messageAckReply(request, { ...body, conversation_id: conversationId }),
          okReply(request, 'ack', { ...body, conversation_id: conversationId }),
        );
  });

  it('is valid JSON with the body fields in the protocol order', () => {
    const parsed = JSON.parse(messageAckReply({ type: 'message', id: 9 }, body));
    assert.deepEqual(Object.keys(parsed), ['type', 'id', 'code', 'body', 'err_msg']);
    assert.deepEqual(parsed.body, body);
  });
});
