import { type ChatMessage, GatehouseClient, type ServerEvent } from '@gatehouse/client';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { type ConnectionState, watchConnection } from '../shared/connection-state.js';
import { ConversationLog } from '../shared/conversation-log.js';
import type { Translate } from '../shared/messages.js';
import { StatusLine } from '../shared/status-line.js';
import { CredentialsGone, type CustomerAuth, type CustomerCredentials } from './customer-auth.js';

export interface WidgetProps {
  /** The Gatehouse origin the script came from, e.g. `http://127.0.0.1:8080`. */
  origin: string;
  channel: string;
  auth: CustomerAuth;
  t: Translate;
}

type Phase = 'new' | 'waiting' | 'claimed' | 'closed';

let localSeq = 0;

/**
 * The customer's chat: a bubble that opens a panel. A thin view over one GatehouseClient:
 * statuses, messages, acks and support events come from the SDK; the widget keeps only what it
 * shows (the conversation log, the session phase, the stored credentials).
 */
export function WidgetApp({ origin, channel, auth, t }: WidgetProps) {
  const [open, setOpen] = useState(false);
  const [credentials, setCredentials] = useState<CustomerCredentials | null>(() => auth.load());
  const [conn, setConn] = useState<ConnectionState>({ status: 'idle', retryAt: 0, reason: '' });
  const [log, setLog] = useState(ConversationLog.empty());
  const [phase, setPhase] = useState<Phase>(credentials?.closed ? 'closed' : 'new');
  const [agentName, setAgentName] = useState('');
  const [announcement, setAnnouncement] = useState('');
  const [startError, setStartError] = useState('');
  const [starting, setStarting] = useState(false);
  const clientRef = useRef<GatehouseClient | null>(null);
  const sessionRef = useRef(credentials?.sessionId ?? '');
  const tokenRef = useRef(credentials?.token ?? null);
  const bubbleRef = useRef<HTMLButtonElement>(null);
  const inputRef = useRef<HTMLTextAreaElement>(null);
  const listRef = useRef<HTMLOListElement>(null);

  // One client per stored customer; it lives as long as the page.
  useEffect(() => {
    if (!credentials) return;
    const client = new GatehouseClient({
      url: `${origin.replace(/^http/, 'ws')}/ws/chat`,
      apiUrl: origin,
      // The token travels in Sec-WebSocket-Protocol, never in a URL, and needs no CORS route.
      auth: 'subprotocol',
      // A laptop that went offline keeps a dead socket open: find out within ~15 s, not 30.
      pingInterval: 10_000,
      pongTimeout: 5_000,
      ...(credentials.expiresAt > Date.now() + 30_000 ? { token: credentials.token } : {}),
      getToken: async () => {
        try {
          const next = await auth.refresh(tokenRef.current);
          tokenRef.current = next.token;
          if (next.sessionId !== sessionRef.current) switchSession(next.sessionId);
          return next.token;
        } catch (err) {
          if (err instanceof CredentialsGone) setTimeout(() => forget(), 0);
          throw err;
        }
      },
    });
    clientRef.current = client;
    const offs = [
      watchConnection(client, setConn),
      client.on('connected', () => void loadHistory(client)),
      client.on('message', (m: ChatMessage) => {
        if (m.conversation_id !== sessionRef.current) return;
        setLog((l) => l.withMessages([m]));
        if (m.from?.kind === 'agent') {
          setAgentName(m.from.name);
          setPhase((p) => (p === 'closed' ? p : 'claimed'));
          setAnnouncement(t('widget.newMessage', { name: m.from.name, text: m.text ?? '' }));
        }
      }),
      client.on('event', (frame: ServerEvent) => onEvent(frame)),
    ];
    void client.connect().catch(() => {});
    return () => {
      for (const off of offs) off();
      client.close();
      clientRef.current = null;
    };
  }, [credentials?.customerId]);

  function onEvent(frame: ServerEvent) {
    const f = frame as ServerEvent & { session_id?: string; agent?: { name: string } };
    if (f.session_id !== sessionRef.current) return;
    if (frame.type === 'session_claimed') {
      const name = f.agent?.name ?? '';
      setAgentName(name);
      setPhase('claimed');
      setAnnouncement(t('widget.joined', { name }));
    } else if (frame.type === 'session_closed') markClosed();
  }

  function markClosed() {
    setPhase('closed');
    setAnnouncement(t('widget.closed'));
    const stored = auth.load();
    if (stored && stored.sessionId === sessionRef.current) auth.save({ ...stored, closed: true });
  }

  /** The latest page of history, merged by seq (a reconnect may overlap what is shown). */
  async function loadHistory(client: GatehouseClient) {
    const sessionId = sessionRef.current;
    try {
      const reply = await client.request<{ messages: ChatMessage[]; has_more: boolean }>({
        type: 'history',
        conversation_id: sessionId,
        limit: 50,
      } as never);
      if (sessionId !== sessionRef.current) return;
      const messages = reply.body?.messages ?? [];
      setLog((l) => l.withMessages(messages, reply.body?.has_more));
      const agent = [...messages].reverse().find((m) => m.from?.kind === 'agent');
      if (agent) setAgentName(agent.from.name);
      setPhase((p) => (p === 'closed' ? p : agent ? 'claimed' : messages.length > 0 ? 'waiting' : p));
    } catch {
      // The next connect loads it again.
    }
  }

  function switchSession(sessionId: string) {
    sessionRef.current = sessionId;
    setLog(ConversationLog.empty());
    setPhase('new');
    setAgentName('');
  }

  function forget() {
    auth.clear();
    tokenRef.current = null;
    sessionRef.current = '';
    setCredentials(null);
    setLog(ConversationLog.empty());
    setPhase('new');
  }

  async function start(name: string, email: string) {
    setStarting(true);
    setStartError('');
    try {
      const created = await auth.start(name.trim() || t('widget.visitor'), channel, email.trim() || undefined);
      tokenRef.current = created.token;
      sessionRef.current = created.sessionId;
      setCredentials(created);
    } catch (err) {
      setStartError(t('widget.startFailed', { error: (err as Error).message }));
    } finally {
      setStarting(false);
    }
  }

  /** After a close: the refresh route hands out the customer's next session. */
  async function startAgain() {
    try {
      const next = await auth.refresh(null, { nextSession: true });
      tokenRef.current = next.token;
      switchSession(next.sessionId);
      inputRef.current?.focus();
    } catch (err) {
      if (err instanceof CredentialsGone) forget();
    }
  }

  function send(text: string) {
    const client = clientRef.current;
    const sessionId = sessionRef.current;
    if (!client || !text.trim() || phase === 'closed') return;
    const key = `l${++localSeq}`;
    const me = client.user;
    setLog((l) =>
      l.withPending({
        key,
        seq: null,
        fromId: me?.id ?? '',
        fromName: t('widget.you'),
        fromKind: 'customer',
        text,
        ts: Date.now(),
        state: 'sending',
      }),
    );
    if (phase === 'new') setPhase('waiting');
    // Offline, the SDK's outbox keeps it and sends it once on reconnect (same client_msg_id).
    client.send(sessionId, text).then(
      (ack) => setLog((l) => l.acked(key, ack.seq, ack.ts)),
      (err: { code?: string }) => {
        setLog((l) => l.failed(key));
        if (err.code === 'FORBIDDEN') markClosed();
      },
    );
  }

  const entries = log.entries;
  useEffect(() => {
    const list = listRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [entries.length, open]);

  // Opening moves the focus into the panel (the first field), for keyboard and screen-reader users.
  const panelRef = useRef<HTMLElement>(null);
  useEffect(() => {
    if (open) panelRef.current?.querySelector<HTMLElement>('input, textarea')?.focus();
  }, [open]);

  const close = () => {
    setOpen(false);
    bubbleRef.current?.focus();
  };

  return (
    <div class="gh-root">
      <div class="gh-sr" aria-live="polite" aria-atomic="true">
        {announcement}
      </div>
      {open ? (
        <section
          ref={panelRef}
          class="gh-panel"
          id="gh-panel"
          role="dialog"
          aria-label={t('widget.title')}
          onKeyDown={(e) => {
            if (e.key === 'Escape') close();
          }}
        >
          <header class="gh-head">
            <h2 class="gh-title">{t('widget.title')}</h2>
            <button type="button" class="gh-x" aria-label={t('widget.close')} onClick={close}>
              ×
            </button>
          </header>
          {credentials ? (
            <>
              <StatusLine state={conn} t={t} onRetry={() => void clientRef.current?.connect().catch(() => {})} />
              {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (axe scrollable-region-focusable) */}
              <ol class="gh-log" ref={listRef} aria-label={t('widget.messages')} tabIndex={0}>
                {entries.map((e) => (
                  <li key={e.key} class={`gh-msg ${e.fromKind === 'customer' ? 'gh-mine' : 'gh-theirs'}`}>
                    <span class="gh-from">{e.fromKind === 'customer' ? t('widget.you') : e.fromName}</span>
                    <span class="gh-text">{e.text}</span>
                    {e.fromKind === 'customer' ? (
                      <span class={`gh-mark gh-${e.state}`}>
                        {e.state === 'stored'
                          ? `✓ ${t('widget.delivered')}`
                          : e.state === 'sending'
                            ? t('widget.sending')
                            : t('widget.failed')}
                      </span>
                    ) : null}
                  </li>
                ))}
              </ol>
              <Notice phase={phase} agentName={agentName} t={t} onAgain={() => void startAgain()} />
              {phase === 'closed' ? null : <Composer t={t} onSend={send} inputRef={inputRef} />}
            </>
          ) : (
            <Intro t={t} busy={starting} error={startError} onStart={(n, e) => void start(n, e)} />
          )}
        </section>
      ) : null}
      <button
        type="button"
        class="gh-bubble"
        ref={bubbleRef}
        aria-expanded={open}
        aria-controls="gh-panel"
        aria-label={open ? t('widget.close') : t('widget.open')}
        onClick={() => (open ? close() : setOpen(true))}
      >
        <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true">
          <path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z" />
        </svg>
      </button>
    </div>
  );
}

function Notice({
  phase,
  agentName,
  t,
  onAgain,
}: {
  phase: Phase;
  agentName: string;
  t: Translate;
  onAgain: () => void;
}) {
  if (phase === 'waiting') return <p class="gh-notice gh-waiting">{t('widget.waiting')}</p>;
  if (phase === 'claimed' && agentName)
    return <p class="gh-notice gh-joined">{t('widget.joined', { name: agentName })}</p>;
  if (phase === 'closed')
    return (
      <p class="gh-notice gh-closed">
        {t('widget.closed')} —{' '}
        <button type="button" class="gh-link" onClick={onAgain}>
          {t('widget.newConversation')}
        </button>
      </p>
    );
  return null;
}

function Composer({
  t,
  onSend,
  inputRef,
}: {
  t: Translate;
  onSend: (text: string) => void;
  inputRef: { current: HTMLTextAreaElement | null };
}) {
  const [text, setText] = useState('');
  const submit = () => {
    if (!text.trim()) return;
    onSend(text);
    setText('');
  };
  return (
    <form
      class="gh-compose"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <textarea
        ref={inputRef}
        class="gh-input"
        rows={2}
        aria-label={t('widget.placeholder')}
        placeholder={t('widget.placeholder')}
        value={text}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <button type="submit" class="gh-send">
        {t('widget.send')}
      </button>
    </form>
  );
}

function Intro({
  t,
  busy,
  error,
  onStart,
}: {
  t: Translate;
  busy: boolean;
  error: string;
  onStart: (name: string, email: string) => void;
}) {
  const ids = useMemo(() => ({ name: 'gh-name', email: 'gh-email' }), []);
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  return (
    <form
      class="gh-intro"
      onSubmit={(e) => {
        e.preventDefault();
        onStart(name, email);
      }}
    >
      <p>{t('widget.intro')}</p>
      <label for={ids.name}>{t('widget.name')}</label>
      <input
        id={ids.name}
        value={name}
        autoComplete="name"
        onInput={(e) => setName((e.target as HTMLInputElement).value)}
      />
      <label for={ids.email}>{t('widget.email')}</label>
      <input
        id={ids.email}
        type="email"
        value={email}
        autoComplete="email"
        onInput={(e) => setEmail((e.target as HTMLInputElement).value)}
      />
      {error ? (
        <p class="gh-error" role="alert">
          {error}
        </p>
      ) : null}
      <button type="submit" class="gh-start" disabled={busy}>
        {t('widget.start')}
      </button>
    </form>
  );
}
