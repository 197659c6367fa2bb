/** `/console/`: the agent console (login, queue, conversations) and the admin view. */
import { GatehouseClient } from '@gatehouse/client';
import { render } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { type ConnectionState, watchConnection } from '../shared/connection-state.js';
import { type Lang, pickLang, type Translate, translator } from '../shared/messages.js';
import { StatusLine } from '../shared/status-line.js';
import { AdminView } from './admin-view.js';
import { AgentDesk } from './agent-desk.js';
import type { AgentLogin } from './api.js';
import { LoginForm } from './login-form.js';

interface Session {
  client: GatehouseClient;
  username: string;
  name: string;
}

/** A re-login the SDK waits for: it asked for a new token (expiry) and there is no refresh token. */
interface Relogin {
  reason: 'expired' | 'expiring';
  resolve: (token: string) => void;
}

function App({ initialLang }: { initialLang: Lang }) {
  const [lang, setLang] = useState(initialLang);
  const t: Translate = translator(lang);
  const [tab, setTab] = useState<'desk' | 'admin'>('desk');
  const [session, setSession] = useState<Session | null>(null);
  const [conn, setConn] = useState<ConnectionState>({ status: 'idle', retryAt: 0, reason: '' });
  const [relogin, setRelogin] = useState<Relogin | null>(null);
  const [announcement, setAnnouncement] = useState('');
  const expiresAt = useRef(0);
  const pending = useRef<{ promise: Promise<string>; resolve: (token: string) => void } | null>(null);

  // Before the browser paints the new text: a screen reader never reads Chinese as English.
  useLayoutEffect(() => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('console.title');
  }, [lang]);

  function start(result: AgentLogin, username: string) {
    expiresAt.current = result.expiresAt;
    const client = new GatehouseClient({
      url: `${location.origin.replace(/^http/, 'ws')}/ws/chat`,
      token: result.token,
      pingInterval: 10_000,
      pongTimeout: 5_000,
      // Agents have no refresh token: a new token means logging in again, so ask the person.
      // One question at a time: the SDK may ask again (expiry after the notice) while it is open.
      getToken: () => {
        const reason = Date.now() >= expiresAt.current ? 'expired' : 'expiring';
        if (!pending.current) {
          let resolve!: (token: string) => void;
          const promise = new Promise<string>((r) => {
            resolve = r;
          });
          pending.current = { promise, resolve };
        }
        const { promise, resolve } = pending.current;
        setRelogin({ reason, resolve });
        return promise;
      },
    });
    watchConnection(client, setConn);
    void client.connect().catch(() => {});
    setSession({ client, username, name: result.user.name });
  }

  function logout() {
    void session?.client.logout();
    setSession(null);
    setRelogin(null);
    pending.current = null;
  }

  return (
    <div class="app">
      <header class="top">
        <h1>{t('console.title')}</h1>
        <nav class="tabs" aria-label={t('console.title')}>
          <button type="button" aria-pressed={tab === 'desk'} onClick={() => setTab('desk')}>
            {t('console.agentView')}
          </button>
          <button type="button" aria-pressed={tab === 'admin'} onClick={() => setTab('admin')}>
            {t('admin.tab')}
          </button>
        </nav>
        <label class="lang">
          {t('common.language')}{' '}
          <select value={lang} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}>
            <option value="en">English</option>
            <option value="zh">简体中文</option>
          </select>
        </label>
        {session ? (
          <span class="me">
            {t('console.signedInAs', { name: session.name })}{' '}
            <button type="button" onClick={logout}>
              {t('console.logout')}
            </button>
          </span>
        ) : null}
      </header>
      <div class="sr-only" aria-live="polite" aria-atomic="true">
        {announcement}
      </div>
      {tab === 'admin' ? (
        <AdminView t={t} />
      ) : !session ? (
        <LoginForm t={t} onLogin={start} />
      ) : (
        <>
          <StatusLine state={conn} t={t} onRetry={() => void session.client.connect().catch(() => {})} />
          {relogin ? (
            <div class="relogin" role="dialog" aria-modal="false" aria-label={t('console.relogin')}>
              <LoginForm
                t={t}
                fixedUser={session.username}
                notice={relogin.reason === 'expired' ? t('console.expired') : t('console.expiring')}
                onLogin={(result) => {
                  expiresAt.current = result.expiresAt;
                  relogin.resolve(result.token);
                  pending.current = null;
                  setRelogin(null);
                }}
              />
            </div>
          ) : null}
          <AgentDesk client={session.client} t={t} announce={setAnnouncement} />
        </>
      )}
    </div>
  );
}

render(
  <App initialLang={pickLang(new URLSearchParams(location.search).get('lang'))} />,
  document.getElementById('app') as HTMLElement,
);
