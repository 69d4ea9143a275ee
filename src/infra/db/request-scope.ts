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

/**
 * Runs `fn` as (part of) a request: a fresh count, and priority until `fn` settles. With
 * `holdsAnswer`, the caller sends the answer only after this returns (GraphQL over HTTP or a
 * socket), so a change made inside may hold it (`holdAnswerUntil`); a handler that writes its
 * own response inside `fn` must not say so.
 */
export async function inRequest<T>(fn: () => Promise<T>, holdsAnswer = false): Promise<T> {
  const s: RequestScope = { statements: 0, open: true, holdsAnswer, answerAfter: 0 };
  try {
    return await runWithContext({ request: s }, fn);
  } finally {
    // Closed before the hold: what the request left running is background work from here,
    // and a change it makes now waits in place (the hold is already measured).
    s.open = false;
    const wait = s.answerAfter - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, Math.ceil(wait)));
  }
}

/**
 * Holds the answer of the request being served until `performance.now()` reaches `at`;
 * false outside an open request whose answer can be held, where the caller must wait
 * itself. A change that is only honoured everywhere some time after it is made (a key
 * revoked: ADR 0036) waits once per request this way, however many such changes one GraphQL
 * document makes.
 */
export function holdAnswerUntil(at: number): boolean {
  const s = currentContext()?.request;
  if (!s?.open || !s.holdsAnswer) return false;
  s.answerAfter = Math.max(s.answerAfter, at);
  return true;
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
