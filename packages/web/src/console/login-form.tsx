import { useState } from 'preact/hooks';
import type { Translate } from '../shared/messages.js';
import { type AgentLogin, ApiError, login } from './api.js';

/** The refusals a person can act on, in the page's language; anything else as the server says it. */
function loginError(err: unknown, t: Translate): string {
  const code = err instanceof ApiError ? err.code : '';
  if (code === 'LOGIN_FAILED') return t('console.badLogin');
  if (code === 'FORBIDDEN') return t('status.blocked');
  if (code === 'RATE_LIMITED') return t('console.tooManyLogins');
  return (err as Error).message;
}

/** Username and password → an access token kept in memory only (agents get no refresh token). */
export function LoginForm({
  t,
  fixedUser,
  notice,
  onLogin,
}: {
  t: Translate;
  fixedUser?: string;
  notice?: string;
  onLogin: (result: AgentLogin, username: string) => void;
}) {
  const [username, setUsername] = useState(fixedUser ?? '');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="login"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError('');
        try {
          onLogin(await login(username, password), username);
        } catch (err) {
          setError(t('console.loginFailed', { error: loginError(err, t) }));
        } finally {
          setBusy(false);
        }
      }}
    >
      {notice ? (
        <p class="notice" role="alert">
          {notice}
        </p>
      ) : null}
      <label for="login-user">{t('console.username')}</label>
      <input
        id="login-user"
        name="username"
        autoComplete="username"
        value={username}
        readOnly={!!fixedUser}
        onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
      />
      <label for="login-password">{t('console.password')}</label>
      <input
        id="login-password"
        name="password"
        type="password"
        autoComplete="current-password"
        value={password}
        onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
      />
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <button type="submit" disabled={busy}>
        {fixedUser ? t('console.relogin') : t('console.login')}
      </button>
    </form>
  );
}
