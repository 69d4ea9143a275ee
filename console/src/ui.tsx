import { createContext, useContext, type ReactNode } from 'react';
import { type CombinedError } from 'urql';
import { may, type ConsoleMutation, type Role } from './roles';

export const RoleContext = createContext<Role | undefined>(undefined);

/** Whether this key's role may run a mutation; the console offers nothing else. */
export function useMay(mutation: ConsoleMutation): boolean {
  return may(useContext(RoleContext), mutation);
}

/** The server's own words: code, reason and message of each error. */
export function ErrorNote({ error }: { error: CombinedError | undefined | null }) {
  if (!error) return null;
  const lines = error.graphQLErrors.length
    ? error.graphQLErrors.map((e) => {
        const code = e.extensions.code as string | undefined;
        const reason = e.extensions.reason as string | undefined;
        return `${code ?? 'ERROR'}${reason ? ` (${reason})` : ''}: ${e.message}`;
      })
    : [error.networkError?.message ?? error.message];
  return (
    <div className="error" role="alert">
      {lines.map((l, i) => (
        <div key={i}>{l}</div>
      ))}
    </div>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span className={`badge s-${state.toLowerCase()}`}>{state}</span>;
}

export function Card({
  title,
  children,
  actions,
}: {
  title: ReactNode;
  children: ReactNode;
  actions?: ReactNode;
}) {
  return (
    <section className="card">
      <div className="card-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour12: false });
}

export function num(v: unknown, digits = 4): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  if (Number.isInteger(v)) return String(v);
  return v.toPrecision(digits);
}

export function pct(v: number | null | undefined): string {
  return typeof v === 'number' ? `${(v * 100).toFixed(1)} %` : '—';
}
