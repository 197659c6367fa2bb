import { useEffect, useState } from 'preact/hooks';
import type { Translate } from '../shared/messages.js';
import { ApiError, callJson } from './api.js';

interface Connection {
  session_id: string;
  principal: { id: string; kind: string; name: string } | null;
  device_type: string | null;
  endpoint: string;
  node: string;
  connected_at: number;
}
interface Stats {
  node: string;
  uptimeSeconds: number;
  connections: { total: number; unauthenticated: number; byKind: Record<string, number> };
  principals: Record<string, number>;
}

/** The operator's view: the admin key (typed in, kept in memory) unlocks the admin API. */
export function AdminView({ t }: { t: Translate }) {
  const [key, setKey] = useState('');
  const [unlocked, setUnlocked] = useState(false);
  const [error, setError] = useState('');
  const [connections, setConnections] = useState<Connection[]>([]);
  const [missing, setMissing] = useState<string[]>([]);
  const [stats, setStats] = useState<Stats | null>(null);
  const [appKeys, setAppKeys] = useState<{ id: string; name: string; createdAt: number }[]>([]);
  const [newKey, setNewKey] = useState<string | null>(null);
  const [done, setDone] = useState('');

  /** A principal kind in the page's language (an unknown kind as it came). */
  const kindName = (kind: string) =>
    kind === 'user' || kind === 'agent' || kind === 'customer' ? t(`kind.${kind}`) : kind;
  const countsByKind = (counts: Record<string, number>) =>
    t('admin.byKind', { user: counts.user ?? 0, agent: counts.agent ?? 0, customer: counts.customer ?? 0 });

  const admin = <T,>(method: string, path: string, body?: unknown) =>
    callJson<T>(method, path, { headers: { 'x-admin-key': key }, ...(body !== undefined ? { body } : {}) });

  async function refresh() {
    try {
      const [list, s, keys] = await Promise.all([
        admin<{ connections: Connection[]; missingNodes: string[] }>('GET', '/api/v1/admin/connections'),
        admin<Stats>('GET', '/api/v1/admin/stats'),
        admin<{ appKeys: { id: string; name: string; createdAt: number }[] }>('GET', '/api/v1/admin/app-keys'),
      ]);
      setConnections(list.connections);
      setMissing(list.missingNodes);
      setStats(s);
      setAppKeys(keys.appKeys);
      setUnlocked(true);
      setError('');
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        setUnlocked(false);
        setError(t('admin.keyRefused'));
      } else setError(t('admin.failed', { error: (err as Error).message }));
    }
  }

  useEffect(() => {
    if (!unlocked) return;
    const timer = setInterval(() => void refresh(), 5000);
    return () => clearInterval(timer);
  }, [unlocked, key]);

  async function act(action: 'kick' | 'revoke' | 'block' | 'unblock', id: string) {
    try {
      await admin(
        'POST',
        `/api/v1/admin/principals/${encodeURIComponent(id)}/${action}`,
        action === 'kick' ? {} : undefined,
      );
      setDone(t('admin.done', { what: `${t(`admin.${action}`)} ${id}` }));
      await refresh();
    } catch (err) {
      setDone(t('admin.failed', { error: (err as Error).message }));
    }
  }

  if (!unlocked)
    return (
      <form
        class="admin-key"
        onSubmit={(e) => {
          e.preventDefault();
          void refresh();
        }}
      >
        <label for="admin-key">{t('admin.key')}</label>
        <input
          id="admin-key"
          type="password"
          autoComplete="off"
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        />
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit">{t('admin.unlock')}</button>
      </form>
    );

  return (
    <div class="admin">
      <p class="done" role="status">
        {done}
      </p>
      <section aria-labelledby="stats-h">
        <h2 id="stats-h">{t('admin.stats')}</h2>
        {stats ? (
          <dl class="stats">
            <dt>{t('admin.node')}</dt>
            <dd>{stats.node}</dd>
            <dt>{t('admin.connections')}</dt>
            <dd>
              {t('admin.total', { total: stats.connections.total, counts: countsByKind(stats.connections.byKind) })}
            </dd>
            <dt>{t('admin.principals')}</dt>
            <dd>{countsByKind(stats.principals)}</dd>
          </dl>
        ) : null}
      </section>
      <section aria-labelledby="conn-h">
        <h2 id="conn-h">
          {t('admin.connections')}{' '}
          <button type="button" onClick={() => void refresh()}>
            {t('admin.refresh')}
          </button>
        </h2>
        {missing.length > 0 ? <p class="error">{missing.join(', ')}</p> : null}
        {connections.length === 0 ? (
          <p class="empty">{t('admin.noConnections')}</p>
        ) : (
          <table class="connections">
            <thead>
              <tr>
                <th scope="col">{t('admin.principal')}</th>
                <th scope="col">{t('admin.kind')}</th>
                <th scope="col">{t('admin.device')}</th>
                <th scope="col">{t('admin.node')}</th>
                <th scope="col">{t('admin.since')}</th>
                <th scope="col">{t('admin.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {connections.map((c) => (
                <tr key={c.session_id}>
                  <td>{c.principal ? `${c.principal.name} (${c.principal.id})` : '—'}</td>
                  <td>{c.principal ? kindName(c.principal.kind) : '—'}</td>
                  <td>{c.device_type ?? '—'}</td>
                  <td>{c.node}</td>
                  <td>{new Date(c.connected_at).toLocaleTimeString()}</td>
                  <td>
                    <div class="actions">
                      {c.principal
                        ? (['kick', 'revoke', 'block'] as const).map((a) => (
                            <button
                              key={a}
                              type="button"
                              aria-label={`${t(`admin.${a}`)} ${c.principal?.name ?? ''}`}
                              onClick={() => void act(a, c.principal?.id as string)}
                            >
                              {t(`admin.${a}`)}
                            </button>
                          ))
                        : null}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {/* A blocked principal has no connection left to list: it is unblocked by id. */}
        <Unblock t={t} onUnblock={(id) => act('unblock', id)} />
      </section>
      <section aria-labelledby="agents-h">
        <h2 id="agents-h">{t('admin.agents')}</h2>
        <CreateAgent
          t={t}
          onCreate={async (username, password, name) => {
            try {
              await admin('POST', '/api/v1/admin/agents', { username, password, ...(name ? { name } : {}) });
              setDone(t('admin.agentCreated', { name: name || username }));
            } catch (err) {
              setDone(t('admin.failed', { error: (err as Error).message }));
            }
          }}
        />
      </section>
      <section aria-labelledby="keys-h">
        <h2 id="keys-h">{t('admin.appKeys')}</h2>
        <ul class="app-keys">
          {appKeys.map((k) => (
            <li key={k.id}>
              {k.name} <code>{k.id}</code>
            </li>
          ))}
        </ul>
        <CreateKey
          t={t}
          onCreate={async (name) => {
            try {
              const created = await admin<{ key: string }>('POST', '/api/v1/admin/app-keys', { name });
              setNewKey(created.key);
              await refresh();
            } catch (err) {
              setDone(t('admin.failed', { error: (err as Error).message }));
            }
          }}
        />
        {newKey ? (
          <p class="new-key" role="alert">
            {t('admin.keyOnce')} <code>{newKey}</code>
          </p>
        ) : null}
      </section>
    </div>
  );
}

function CreateAgent({ t, onCreate }: { t: Translate; onCreate: (u: string, p: string, n: string) => Promise<void> }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [name, setName] = useState('');
  return (
    <form
      class="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        await onCreate(username, password, name);
        setPassword('');
      }}
    >
      <label for="agent-username">{t('console.username')}</label>
      <input id="agent-username" value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
      <label for="agent-password">{t('console.password')}</label>
      <input
        id="agent-password"
        type="password"
        autoComplete="new-password"
        value={password}
        onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
      />
      <label for="agent-name">{t('admin.agentName')}</label>
      <input id="agent-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <button type="submit">{t('admin.createAgent')}</button>
    </form>
  );
}

function Unblock({ t, onUnblock }: { t: Translate; onUnblock: (id: string) => Promise<void> }) {
  const [id, setId] = useState('');
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (id.trim()) void onUnblock(id.trim());
      }}
    >
      <label for="unblock-id">{t('admin.unblockId')}</label>
      <input id="unblock-id" value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
      <button type="submit">{t('admin.unblock')}</button>
    </form>
  );
}

function CreateKey({ t, onCreate }: { t: Translate; onCreate: (name: string) => Promise<void> }) {
  const [name, setName] = useState('');
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        void onCreate(name);
      }}
    >
      <label for="key-name">{t('admin.keyName')}</label>
      <input id="key-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <button type="submit">{t('admin.createKey')}</button>
    </form>
  );
}
