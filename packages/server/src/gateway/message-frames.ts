import type { PrincipalInfo } from '@gatehouse/protocol';
import { isWellFormedText } from '../auth/well-formed-text.js';
import { GatehouseError } from '../errors.js';
import type { Messaging } from '../messaging/messaging.js';
import { messageAckReply, okReply } from './replies.js';
import type { FrameHandler } from './session-frames.js';

const MAX_HISTORY_PAGE = 200;

function optionalString(value: unknown, name: string, max = 256): string | null {
  if (value === undefined || value === null) return null;
  // NUL is refused because PostgreSQL text cannot hold it: one such id must not fail a whole batch.
  // Lone surrogates too: SQLite would store them as U+FFFD, a different id from the one sent.
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > max ||
    value.includes('\u0000') ||
    !isWellFormedText(value)
  )
    throw new GatehouseError(
      'INVALID_REQUEST',
      `${name} must be a non-empty, well-formed string of at most ${max} characters, without NUL`,
    );
  return value;
}

function optionalSeq(value: unknown, name: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new GatehouseError('INVALID_REQUEST', `${name} must be a non-negative integer`);
  return value;
}

/** `message`, `ack` and `history` frames (SPEC §4, §6). */
export function messageFrameHandlers(messaging: Messaging): Record<'message' | 'ack' | 'history', FrameHandler> {
  return {
    async message(_ctx, conn, frame) {
      const conversationId =
        optionalString(frame.conversation_id, 'conversation_id') ?? optionalString(frame.sessionId, 'sessionId');
      const to = optionalString(frame.to, 'to', 128);
      if ((conversationId === null) === (to === null))
        throw new GatehouseError('INVALID_REQUEST', 'give either conversation_id (or sessionId) or to');
      if (frame.text !== undefined && frame.text !== null && typeof frame.text !== 'string')
        throw new GatehouseError('INVALID_REQUEST', 'text must be a string');
      const { ack, publish } = await messaging.send(
        conn.principal as PrincipalInfo,
        {
          conversationId,
          to,
          text: typeof frame.text === 'string' ? frame.text : null,
          data: frame.data,
          clientMsgId: optionalString(frame.client_msg_id, 'client_msg_id', 128),
        },
        conn,
      );
      conn.sendRaw(messageAckReply(frame, ack));
      publish();
    },

    async ack(_ctx, conn, frame) {
      const conversationId = optionalString(frame.conversation_id, 'conversation_id');
      const seq = optionalSeq(frame.seq, 'seq');
      if (conversationId === null || seq === null)
        throw new GatehouseError('INVALID_REQUEST', 'ack needs conversation_id and seq');
      await messaging.acknowledge(conn, conversationId, seq);
      if (frame.id !== undefined) conn.sendRaw(okReply(frame, 'ack', { conversation_id: conversationId, seq }));
    },

    async history(_ctx, conn, frame) {
      const conversationId = optionalString(frame.conversation_id, 'conversation_id');
      if (conversationId === null) throw new GatehouseError('INVALID_REQUEST', 'history needs conversation_id');
      const limit = Math.min(optionalSeq(frame.limit, 'limit') ?? 50, MAX_HISTORY_PAGE) || 50;
      const page = await messaging.history(
        (conn.principal as PrincipalInfo).id,
        conversationId,
        optionalSeq(frame.before_seq, 'before_seq'),
        limit,
      );
      // Stored bodies are already JSON: splice them in rather than parse and re-serialize.
      const reply = okReply(frame, 'history', { messages: [], has_more: page.hasMore });
      conn.sendRaw(reply.replace('"messages":[]', `"messages":[${page.messages.map((m) => m.body).join(',')}]`));
    },
  };
}
