import { currentContext, type RequestScope, runWithContext } from './async-context';

/**
 * The request a piece of work is done for, carried through AsyncLocalStorage so resolvers,
 * DataLoader batches and repositories need not pass anything along. It answers two
 * questions about every SQL statement:
 *
 * - **Is a caller waiting for it?** While a request is open its statements take the next free
 *   connection before background work's (`priority-pool.ts`). Work a request starts and
 *   leaves running (a dataset build it queued) keeps the scope but not the priority once the
 *   request has been answered: it is background work from then on.
 * - **What did one operation cost?** The statements sent inside a scope are counted
 *   (`aether_graphql_db_statements`); the process-wide `aether_db_queries_total` also counts
 *   pollers and relays, so it cannot say that.
 */
/** Runs `fn` as (part of) a request: a fresh count, and priority until `fn` settles. */
export async function inRequest<T>(fn: () => Promise<T>): Promise<T> {
  const s: RequestScope = { statements: 0, open: true };
  try {
    return await runWithContext({ request: s }, fn);
  } finally {
    s.open = false;
  }
}

/** Whether the current work is a request still being answered. */
export function inOpenRequest(): boolean {
  return currentContext()?.request?.open === true;
}

/** Called for every statement sent; a no-op outside a request. */
export function noteStatement(): void {
  const s = currentContext()?.request;
  if (s) s.statements++;
}

/** Statements sent so far in the current request, or undefined outside one. */
export function statementsSoFar(): number | undefined {
  return currentContext()?.request?.statements;
}
