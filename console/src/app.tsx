import { lazy, Suspense, useEffect, useMemo, useState, type ComponentType } from 'react';
import { Provider, useQuery } from 'urql';
import { createClient } from './client';
import { ViewerDocument } from './generated/graphql';
import { type Role } from './roles';
import { navigate, useLocation } from './router';
import { forgetKey, storedKey, storeKey } from './session';
import { ErrorNote, RoleContext } from './ui';

/** Pages load on first visit: the sign-in page carries none of their code. */
const PAGES: { path: string; title: string; page: ComponentType }[] = [
  { path: '/lineage', title: 'Lineage', page: lazy(() => import('./pages/lineage-page')) },
  { path: '/runs', title: 'Runs', page: lazy(() => import('./pages/runs-page')) },
  { path: '/studies', title: 'Studies', page: lazy(() => import('./pages/studies-page')) },
  { path: '/models', title: 'Models', page: lazy(() => import('./pages/models-page')) },
  {
    path: '/deployments',
    title: 'Deployments',
    page: lazy(() => import('./pages/deployments-page')),
  },
  {
    path: '/monitoring',
    title: 'Monitoring',
    page: lazy(() => import('./pages/monitoring-page')),
  },
  { path: '/features', title: 'Features', page: lazy(() => import('./pages/features-page')) },
  { path: '/graphiql', title: 'GraphiQL', page: lazy(() => import('./pages/graphiql-page')) },
];

export function App() {
  const [key, setKey] = useState<string | null>(storedKey);
  const session = useMemo(() => (key ? createClient(key) : null), [key]);
  useEffect(() => () => session?.close(), [session]);
  if (!key || !session) return <SignIn onKey={(k) => (storeKey(k), setKey(k))} />;
  return (
    <Provider value={session.client}>
      <Shell onSignOut={() => (forgetKey(), setKey(null))} />
    </Provider>
  );
}

function SignIn({ onKey }: { onKey: (key: string) => void }) {
  const [text, setText] = useState('');
  return (
    <div className="signin">
      <form
        className="card"
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim()) onKey(text.trim());
        }}
      >
        <h1>Aether Console</h1>
        <p>
          Paste an API key (<code>aek_…</code>). It stays in this tab’s session storage and is sent
          as <code>Authorization: Bearer …</code>; <code>npm start</code> saved the first admin key
          in <code>.data/admin-key</code>.
        </p>
        <input
          name="apiKey"
          type="password"
          autoComplete="off"
          placeholder="aek_…"
          value={text}
          onChange={(e) => setText(e.target.value)}
          autoFocus
        />
        <button type="submit">Sign in</button>
      </form>
    </div>
  );
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const [{ data, error, fetching }] = useQuery({ query: ViewerDocument });
  const { path } = useLocation();
  useEffect(() => {
    if (path === '/' || !PAGES.some((p) => p.path === path)) navigate('/lineage', true);
  }, [path]);
  const unauthenticated = error?.graphQLErrors.some((e) => e.extensions.code === 'UNAUTHENTICATED');
  if (unauthenticated)
    return (
      <div className="signin">
        <div className="card">
          <ErrorNote error={error} />
          <button onClick={onSignOut}>Use another key</button>
        </div>
      </div>
    );
  const page = PAGES.find((p) => p.path === path);
  const role = data?.viewer.role as Role | undefined;
  return (
    <RoleContext.Provider value={role}>
      <header className="top">
        <span className="brand">Aether</span>
        <nav>
          {PAGES.map((p) => (
            <a
              key={p.path}
              href={p.path}
              className={p.path === path ? 'active' : ''}
              onClick={(e) => {
                e.preventDefault();
                navigate(p.path);
              }}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <span className="who" data-testid="viewer">
          {fetching && !data ? '…' : data ? `${data.viewer.name} · ${data.viewer.role}` : ''}
        </span>
        <button className="link" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>
        {error && !unauthenticated && <ErrorNote error={error} />}
        <Suspense fallback={<p className="muted">Loading…</p>}>{page && <page.page />}</Suspense>
      </main>
    </RoleContext.Provider>
  );
}
