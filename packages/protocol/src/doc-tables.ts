import { CLOSE_CODES, ERROR_CODES } from './codes.js';
import { CMD_IDS, UNAUTHENTICATED_FRAME_TYPES } from './frames.js';

const ADVICE: Record<string, string> = {
  stop: 'stop',
  reconnect: 'reconnect with backoff',
  'reconnect-slowly': 'reconnect after a longer backoff',
  reauthenticate: 'get a new token (refresh or re-login), then reconnect',
  'report-bug': 'stop, report a bug',
};

/** The tables of docs/protocol.md, rendered from the protocol package (a test keeps them equal). */
export function renderProtocolTables(): Record<'close-codes' | 'error-codes' | 'cmd-ids', string> {
  const close = [
    '| code | reason(s) | client should | meaning |',
    '|---|---|---|---|',
    ...CLOSE_CODES.map(
      (c) => `| ${c.code} | ${c.reasons.map((r) => `\`${r}\``).join(', ')} | ${ADVICE[c.advice]} | ${c.description} |`,
    ),
  ].join('\n');
  const errors = [
    '| error | HTTP status / frame code | close code | meaning |',
    '|---|---|---|---|',
    ...ERROR_CODES.map((e) => `| \`${e.code}\` | ${e.status} | ${e.close ?? '—'} | ${e.description} |`),
  ].join('\n');
  const cmd = [
    '| cmd_id | type | allowed before authentication |',
    '|---|---|---|',
    ...Object.entries(CMD_IDS).map(
      ([id, type]) => `| ${id} | \`${type}\` | ${UNAUTHENTICATED_FRAME_TYPES.has(type) ? 'yes' : 'no'} |`,
    ),
  ].join('\n');
  return { 'close-codes': close, 'error-codes': errors, 'cmd-ids': cmd };
}

/** Replaces each `<!-- table:NAME -->…<!-- /table:NAME -->` block of a document with the rendered table. */
export function fillProtocolTables(doc: string): string {
  const tables = renderProtocolTables();
  return doc.replace(/<!-- table:([a-z-]+) -->[\s\S]*?<!-- \/table:\1 -->/g, (block, name: keyof typeof tables) =>
    name in tables ? `<!-- table:${name} -->\n${tables[name]}\n<!-- /table:${name} -->` : block,
  );
}
