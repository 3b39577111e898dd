// The kasane web console: sign-in with an administrator token, then the pages (pages.tsx) over the
// authority's /v1 API, kept current by its server-sent events. Served by `kasane authority serve`.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, whenSignedOut, ApiError } from './api.js';
import { startLive, stopLive, useConnected } from './live.js';
import { AuditPage, FederationPage, GatewayPage, MapPage, Overview, VpnPage } from './pages.js';
import { interceptLinks, useRoute } from './router.js';
import type { SessionView } from './types.js';
import { Problem } from './ui.js';
import './app.css';

function SignIn({ onSignedIn, why }: { onSignedIn: (s: SessionView) => void; why?: string }) {
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin">
      <h1>kasane</h1>
      <p class="muted">Sign in to this authority with an administrator token (kasane-admin-v1.…).</p>
      {why ? <p class="notice">{why}</p> : null}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const input = (e.currentTarget as HTMLFormElement).elements.namedItem('token') as HTMLInputElement;
          const token = input.value;
          // The token is sent once and forgotten: the session cookie (HttpOnly) carries on.
          input.value = '';
          setBusy(true);
          setError(undefined);
          try {
            onSignedIn(await api.signIn(token));
          } catch (err) {
            setError(
              err instanceof ApiError && err.status === 401
                ? new Error('That token was refused: it is wrong, malformed or revoked.')
                : (err as Error),
            );
          } finally {
            setBusy(false);
          }
        }}
      >
        <label class="field">
          <span>administrator token</span>
          <input name="token" type="password" autocomplete="off" spellcheck={false} required />
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <Problem error={error} />
      </form>
      <p class="muted small">
        On the authority host: <span class="mono">DATA/admin.token</span>, or a new one with{' '}
        <span class="mono">kasane authority token create NAME</span>.
      </p>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: SessionView; onSignOut: () => void }) {
  const route = useRoute();
  const connected = useConnected();
  const [authority, setAuthority] = useState('');
  useEffect(() => {
    void api.status().then(
      (s) => setAuthority(s.authority),
      () => undefined,
    );
  }, []);
  useEffect(() => {
    document.title = authority ? `${authority} · kasane` : 'kasane';
  }, [authority]);
  const tab = (path: string, label: string, active: boolean) => (
    <a href={path} class={active ? 'active' : ''} aria-current={active ? 'page' : undefined}>
      {label}
    </a>
  );
  let page;
  switch (route.page) {
    case 'overview':
      page = <Overview />;
      break;
    case 'map':
      page = <MapPage />;
      break;
    case 'vpn':
      page = <VpnPage name={route.name} />;
      break;
    case 'gateway':
      page = <GatewayPage name={route.name} />;
      break;
    case 'audit':
      page = <AuditPage query={route.query} />;
      break;
    case 'federation':
      page = <FederationPage />;
      break;
    default:
      page = <p>There is no page {route.path}.</p>;
  }
  return (
    <>
      <header class="top">
        <span class="brand">kasane</span>
        <span class="authority" data-testid="authority-name">
          {authority}
        </span>
        <nav>
          {tab('/', 'Overview', route.page === 'overview' || route.page === 'vpn' || route.page === 'gateway')}
          {tab('/map', 'Map', route.page === 'map')}
          {tab('/audit', 'Audit log', route.page === 'audit')}
          {tab('/federation', 'Federation', route.page === 'federation')}
        </nav>
        <span
          class={connected ? 'live on' : 'live'}
          title={connected ? 'live: changes appear as they happen' : 'not connected to the live events; retrying'}
        >
          {connected ? 'live' : 'offline'}
        </span>
        <span class="who">{session.actor}</span>
        <button type="button" class="link" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main class="page">{page}</main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<SessionView | null>();
  const [why, setWhy] = useState<string>();
  useEffect(() => {
    whenSignedOut(() => {
      stopLive();
      setWhy('Your session has ended. Sign in again.');
      setSession(null);
    });
    api.session().then(setSession, () => setSession(null));
    return interceptLinks(document.body);
  }, []);
  useEffect(() => {
    if (!session) return;
    return startLive(() => {
      setWhy('Your session has ended. Sign in again.');
      setSession(null);
    });
  }, [session]);
  if (session === undefined) return null;
  if (session === null)
    return (
      <SignIn
        why={why}
        onSignedIn={(s) => {
          setWhy(undefined);
          setSession(s);
        }}
      />
    );
  return (
    <Shell
      session={session}
      onSignOut={async () => {
        await api.signOut().catch(() => undefined);
        stopLive();
        setWhy('Signed out.');
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
