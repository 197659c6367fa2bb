import { useEffect, useState } from 'preact/hooks';
import type { ConnectionState } from './connection-state.js';
import type { MessageKey, Translate } from './messages.js';

const TERMINAL: Record<string, MessageKey> = {
  replaced: 'status.replaced',
  revoked: 'status.revoked',
  kicked: 'status.kicked',
  blocked: 'status.blocked',
  forbidden: 'status.forbidden',
};

/** The connection line: connecting / connected / reconnecting with a countdown / a stop with a retry button. */
export function StatusLine({ state, t, onRetry }: { state: ConnectionState; t: Translate; onRetry: () => void }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (state.status !== 'reconnecting') return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [state.status, state.retryAt]);
  const { status } = state;
  let text: string;
  let retry = false;
  if (status === 'reconnecting') {
    const seconds = Math.ceil((state.retryAt - now) / 1000);
    text = seconds > 0 ? t('status.reconnecting', { seconds }) : t('status.reconnectingNow');
  } else if (status === 'disconnected') {
    text = state.reason ? t('status.error', { reason: state.reason }) : t('status.disconnected');
    retry = true;
  } else if (TERMINAL[status]) {
    text = t(TERMINAL[status] as MessageKey);
    retry = status !== 'replaced';
  } else text = t(`status.${status}` as MessageKey);
  return (
    <div class={`gh-status gh-status-${status}`} data-status={status}>
      <span class="gh-dot" aria-hidden="true" />
      <span role="status">{text}</span>
      {retry ? (
        <button type="button" class="gh-retry" onClick={onRetry}>
          {t('status.retry')}
        </button>
      ) : null}
    </div>
  );
}
