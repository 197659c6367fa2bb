/**
 * What a client does after its socket closed, as data beside the close-code table: the
 * terminal status a "stop" close puts it in, and which closes call for a spread-out retry.
 * The SDK reads only this and `closeAdvice`, never a copy of the codes.
 */
import { CloseCode, closeAdvice, ERROR_CODES } from './codes.js';

/** Statuses a client never leaves on its own: reconnecting would fight the server's decision. */
export type TerminalStatus = 'replaced' | 'revoked' | 'kicked' | 'blocked' | 'forbidden';

/** Terminal status per close code, or per close reason for codes with several. */
export const TERMINAL_STATUS: Readonly<Record<number, TerminalStatus | Readonly<Record<string, TerminalStatus>>>> = {
  [CloseCode.REPLACED]: 'replaced',
  [CloseCode.FORBIDDEN]: 'forbidden',
  [CloseCode.REVOKED]: { REVOKED: 'revoked', KICKED: 'kicked', BLOCKED: 'blocked' },
};

/**
 * Closes made on purpose by a server going away: it sends them to every socket it holds at the
 * same moment, so each client spreads its retries over a window instead of joining one wave.
 */
export const SPREAD_RECONNECT_CODES: readonly number[] = [CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART];

export interface ClosePolicy {
  /** `stop`: never reconnect on its own; `reauthenticate`: get a new token first; `reconnect`: retry later. */
  action: 'stop' | 'reconnect' | 'reauthenticate';
  /** For `stop`: the terminal status, or null for a plain stop (1000, a bug report). */
  status: TerminalStatus | null;
  /** For `reconnect`: how soon (`spread`: a crowd was closed at once, see SPREAD_RECONNECT_CODES). */
  delay: 'spread' | 'backoff' | 'long';
  /** The close means the client sent something it should not have (4400, 4413). */
  bug: boolean;
}

/** The policy for a close (code and reason), following the close-code table. */
export function closePolicy(code: number, reason = ''): ClosePolicy {
  const advice = closeAdvice(code);
  const terminal = TERMINAL_STATUS[code];
  const status = typeof terminal === 'string' ? terminal : terminal ? (terminal[reason] ?? 'revoked') : null;
  const action =
    advice === 'reauthenticate'
      ? 'reauthenticate'
      : advice === 'reconnect' || advice === 'reconnect-slowly'
        ? 'reconnect'
        : 'stop';
  const delay = advice === 'reconnect-slowly' ? 'long' : SPREAD_RECONNECT_CODES.includes(code) ? 'spread' : 'backoff';
  return { action, status: action === 'stop' ? status : null, delay, bug: advice === 'report-bug' };
}

/** The close code that stands for a refusal in the HTTP handshake (`X-WebSocket-Error-Code`, status). */
export function refusalCloseCode(error: string | undefined, status: number): number {
  const info = ERROR_CODES.find((e) => e.code === error);
  if (info?.close) return info.close;
  return status === 503 ? CloseCode.TRY_AGAIN_LATER : status >= 400 && status < 500 ? 4000 + status : 1006;
}
