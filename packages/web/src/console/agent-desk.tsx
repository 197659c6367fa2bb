import type { ChatMessage, GatehouseClient, ServerEvent, SupportSession } from '@gatehouse/client';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ConversationLog } from '../shared/conversation-log.js';
import type { Translate } from '../shared/messages.js';

interface Entry {
  id: string;
  customerId: string;
  customerName: string;
  channel: string;
  firstMessage: string;
  waitingSince: number | null;
  /** Set when another agent claimed it (session_claimed or a 409). */
  takenBy?: string;
  claimError?: string;
  closed?: boolean;
}

type Listing = SupportSession & {
  channel?: string;
  first_message?: string | null;
  waiting_since?: number | null;
  /** Whether the customer was connected when the list was read (presence frames follow changes). */
  customer_online?: boolean;
};

/** Presence known from session lists: customer id → online, for the entries that say. */
function presenceOf(listings: Listing[]): Record<string, boolean> {
  const known: Record<string, boolean> = {};
  for (const s of listings)
    if (s.customer_id && typeof s.customer_online === 'boolean') known[s.customer_id] = s.customer_online;
  return known;
}

function toEntry(s: Listing, firstMessage?: string | null): Entry {
  return {
    id: s.id,
    customerId: s.customer_id ?? '',
    customerName: s.customer?.name ?? s.customer_id ?? '',
    channel: s.channel ?? '',
    firstMessage: firstMessage ?? s.first_message ?? '',
    waitingSince: s.waiting_since ?? null,
    closed: s.status === 'closed',
  };
}

let localSeq = 0;

/**
 * The agent's desk: the live queue, the agent's own sessions with unread counts and one
 * conversation. Everything comes from the SDK: REST lists on (re)connect, then its events.
 */
export function AgentDesk({
  client,
  t,
  announce,
}: {
  client: GatehouseClient;
  t: Translate;
  announce: (s: string) => void;
}) {
  const [queue, setQueue] = useState<Map<string, Entry>>(new Map());
  const [mine, setMine] = useState<Map<string, Entry>>(new Map());
  const [unread, setUnread] = useState<Record<string, number>>({});
  const [presence, setPresence] = useState<Record<string, boolean>>({});
  const [logs, setLogs] = useState<Record<string, ConversationLog>>({});
  const [active, setActive] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const activeRef = useRef<string | null>(null);
  activeRef.current = active;
  const takenBy = useRef(new Map<string, string>());

  const updateLog = (id: string, fn: (l: ConversationLog) => ConversationLog) =>
    setLogs((all) => ({ ...all, [id]: fn(all[id] ?? ConversationLog.empty()) }));

  async function loadLists() {
    try {
      const [open, own] = await Promise.all([client.sessions('open'), client.sessions('mine')]);
      setQueue(new Map((open.sessions as Listing[]).map((s) => [s.id, toEntry(s)])));
      setMine(new Map((own.sessions as Listing[]).map((s) => [s.id, toEntry(s)])));
      setPresence((p) => ({ ...p, ...presenceOf([...(open.sessions as Listing[]), ...(own.sessions as Listing[])]) }));
      const convs = await client.conversations();
      setUnread(Object.fromEntries(convs.conversations.map((c) => [c.id, c.id === activeRef.current ? 0 : c.unread])));
    } catch {
      // Shown by the status line; the next connect loads again.
    }
    if (activeRef.current) void loadLatest(activeRef.current);
  }

  async function loadLatest(id: string) {
    try {
      const page = await client.history(id, { limit: 30 });
      updateLog(id, (l) => l.withMessages(page.messages, l.oldestSeq === null ? page.has_more : l.hasMore));
    } catch {}
  }

  async function loadOlder(id: string) {
    const oldest = logs[id]?.oldestSeq;
    if (oldest == null) return;
    const page = await client.history(id, { beforeSeq: oldest, limit: 30 });
    updateLog(id, (l) => l.withMessages(page.messages, page.has_more));
  }

  useEffect(() => {
    const offs = [
      client.on('connected', () => void loadLists()),
      client.on('message', (m: ChatMessage) => {
        updateLog(m.conversation_id, (l) => l.withMessages([m]));
        if (m.conversation_id !== activeRef.current)
          setUnread((u) => ({ ...u, [m.conversation_id]: (u[m.conversation_id] ?? 0) + 1 }));
        if (m.from?.kind === 'customer') announce(`${m.from.name}: ${m.text ?? ''}`);
      }),
      client.on('event', (frame: ServerEvent) => {
        const f = frame as any;
        if (frame.type === 'session_waiting') {
          const entry = toEntry(f.session, f.message?.text);
          setQueue((q) => new Map(q).set(entry.id, entry));
          announce(`${entry.customerName}: ${entry.firstMessage}`);
        } else if (frame.type === 'session_claimed') {
          takenBy.current.set(f.session_id, f.agent?.name ?? '');
          setQueue((q) => {
            const entry = q.get(f.session_id);
            if (!entry) return q;
            const next = new Map(q);
            if (f.agent?.id === client.user?.id) next.delete(f.session_id);
            else next.set(f.session_id, { ...entry, takenBy: f.agent?.name ?? '' });
            return next;
          });
        } else if (frame.type === 'session_closed') {
          setQueue((q) => {
            const next = new Map(q);
            next.delete(f.session_id);
            return next;
          });
          setMine((m) => {
            const entry = m.get(f.session_id);
            return entry ? new Map(m).set(f.session_id, { ...entry, closed: true }) : m;
          });
        } else if (frame.type === 'presence') {
          setPresence((p) => ({ ...p, [f.user_id]: !!f.online }));
        }
      }),
    ];
    if (client.status === 'connected') void loadLists();
    const tick = setInterval(() => setNow(Date.now()), 30_000);
    return () => {
      for (const off of offs) off();
      clearInterval(tick);
    };
  }, [client]);

  async function claim(entry: Entry) {
    try {
      const { session } = await client.claim(entry.id);
      setPresence((p) => ({ ...p, ...presenceOf([session as Listing]) }));
      setQueue((q) => {
        const next = new Map(q);
        next.delete(entry.id);
        return next;
      });
      setMine((m) => new Map(m).set(entry.id, { ...entry, takenBy: undefined, claimError: undefined }));
      open(entry.id);
    } catch (err) {
      const code = (err as { code?: string; status?: number }).code;
      const status = (err as { status?: number }).status;
      const message =
        status === 409 || code === 'CONFLICT'
          ? t('console.taken', { name: takenBy.current.get(entry.id) || t('console.anotherAgent') })
          : t('common.error', { error: code ?? String(err) });
      setQueue((q) => new Map(q).set(entry.id, { ...entry, claimError: message }));
    }
  }

  function open(id: string) {
    setActive(id);
    setUnread((u) => ({ ...u, [id]: 0 }));
    void loadLatest(id);
  }

  function reply(id: string, text: string) {
    const key = `l${++localSeq}`;
    updateLog(id, (l) =>
      l.withPending({
        key,
        seq: null,
        fromId: client.user?.id ?? '',
        fromName: client.user?.name ?? '',
        fromKind: 'agent',
        text,
        ts: Date.now(),
        state: 'sending',
      }),
    );
    client.send(id, text).then(
      (ack) => updateLog(id, (l) => l.acked(key, ack.seq, ack.ts)),
      () => updateLog(id, (l) => l.failed(key)),
    );
  }

  async function closeSession(id: string) {
    try {
      await client.closeSession(id);
      setMine((m) => {
        const entry = m.get(id);
        return entry ? new Map(m).set(id, { ...entry, closed: true }) : m;
      });
    } catch (err) {
      announce(t('common.error', { error: (err as { code?: string }).code ?? String(err) }));
    }
  }

  const current = active ? mine.get(active) : undefined;
  return (
    <div class="desk">
      <nav class="lists" aria-label={t('console.agentView')}>
        <section aria-labelledby="queue-h">
          <h2 id="queue-h">
            {t('console.queue')} <span class="count">{[...queue.values()].filter((e) => !e.takenBy).length}</span>
          </h2>
          {queue.size === 0 ? <p class="empty">{t('console.queueEmpty')}</p> : null}
          <ul class="queue">
            {[...queue.values()].map((e) => (
              <li key={e.id} class={`queue-item${e.takenBy ? ' taken' : ''}`} data-session={e.id}>
                <div class="who">
                  <strong>{e.customerName}</strong> <span class="channel">{e.channel}</span>
                </div>
                <div class="first">{e.firstMessage}</div>
                {e.waitingSince ? (
                  <div class="since">
                    {t('console.waitingSince', { minutes: Math.max(0, Math.floor((now - e.waitingSince) / 60_000)) })}
                  </div>
                ) : null}
                {e.claimError ? (
                  <p class="error" role="alert">
                    {e.claimError}
                  </p>
                ) : e.takenBy ? (
                  <p class="taken-by">{t('console.taken', { name: e.takenBy })}</p>
                ) : null}
                {e.takenBy || e.claimError ? null : (
                  <button type="button" class="claim" onClick={() => void claim(e)}>
                    {t('console.claim')}
                  </button>
                )}
              </li>
            ))}
          </ul>
        </section>
        <section aria-labelledby="mine-h">
          <h2 id="mine-h">{t('console.mine')}</h2>
          {mine.size === 0 ? <p class="empty">{t('console.mineEmpty')}</p> : null}
          <ul class="mine">
            {[...mine.values()].map((e) => (
              <li key={e.id}>
                <button
                  type="button"
                  class={`mine-item${e.id === active ? ' active' : ''}${e.closed ? ' closed' : ''}`}
                  aria-current={e.id === active ? 'true' : undefined}
                  data-session={e.id}
                  onClick={() => open(e.id)}
                >
                  <span>{e.customerName}</span>
                  {unread[e.id] ? (
                    <span class="unread">
                      <span aria-hidden="true">{unread[e.id]}</span>
                      <span class="sr-only">{t('console.unread', { count: unread[e.id] ?? 0 })}</span>
                    </span>
                  ) : null}
                </button>
              </li>
            ))}
          </ul>
        </section>
      </nav>
      <main class="conversation" aria-label={current?.customerName ?? t('console.noConversation')}>
        {current ? (
          <ConversationView
            key={current.id}
            entry={current}
            log={logs[current.id] ?? ConversationLog.empty()}
            online={presence[current.customerId]}
            t={t}
            onOlder={() => void loadOlder(current.id)}
            onReply={(text) => reply(current.id, text)}
            onClose={() => void closeSession(current.id)}
          />
        ) : (
          <p class="empty">{t('console.noConversation')}</p>
        )}
      </main>
    </div>
  );
}

function ConversationView({
  entry,
  log,
  online,
  t,
  onOlder,
  onReply,
  onClose,
}: {
  entry: Entry;
  log: ConversationLog;
  online: boolean | undefined;
  t: Translate;
  onOlder: () => void;
  onReply: (text: string) => void;
  onClose: () => void;
}) {
  const [text, setText] = useState('');
  const listRef = useRef<HTMLOListElement>(null);
  const entries = log.entries;
  useEffect(() => {
    const list = listRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [entries.length]);
  const submit = () => {
    if (!text.trim()) return;
    onReply(text);
    setText('');
  };
  return (
    <>
      <header class="conv-head">
        <h2>{entry.customerName}</h2>
        <span class={`presence ${online === undefined ? 'unknown' : online ? 'online' : 'offline'}`}>
          {online === undefined ? t('console.presenceUnknown') : online ? t('console.online') : t('console.offline')}
        </span>
        {entry.closed ? null : (
          <button type="button" class="close-session" onClick={onClose}>
            {t('console.closeSession')}
          </button>
        )}
      </header>
      {log.hasMore ? (
        <button type="button" class="older" onClick={onOlder}>
          {t('console.olderMessages')}
        </button>
      ) : null}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (axe scrollable-region-focusable) */}
      <ol class="log" ref={listRef} tabIndex={0} aria-label={entry.customerName}>
        {entries.map((e) => (
          <li key={e.key} class={`msg ${e.fromKind === 'agent' ? 'mine' : 'theirs'} ${e.state}`}>
            <span class="from">{e.fromName}</span>
            <span class="text">{e.text}</span>
          </li>
        ))}
      </ol>
      {entry.closed ? (
        <p class="notice closed-notice">{t('console.sessionClosed')}</p>
      ) : (
        <form
          class="compose"
          onSubmit={(e) => {
            e.preventDefault();
            submit();
          }}
        >
          <textarea
            aria-label={t('console.reply')}
            placeholder={t('console.reply')}
            rows={2}
            value={text}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                submit();
              }
            }}
          />
          <button type="submit">{t('console.send')}</button>
        </form>
      )}
    </>
  );
}
