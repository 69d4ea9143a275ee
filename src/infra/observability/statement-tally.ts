import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * SQL statements sent on behalf of one unit of work (a GraphQL operation), counted through
 * AsyncLocalStorage: resolvers, DataLoader batches and repositories need not pass anything
 * along. The process-wide `aether_db_queries_total` also counts pollers and relays, so it
 * cannot say what one operation cost; this can (`aether_graphql_db_statements`).
 */
const tally = new AsyncLocalStorage<{ statements: number }>();

/** Runs `fn` with a fresh tally; `statementsSoFar` inside it reads the count. */
export function withStatementTally<T>(fn: () => Promise<T>): Promise<T> {
  return tally.run({ statements: 0 }, fn);
}

/** Called for every statement sent; a no-op outside a tally. */
export function noteStatement(): void {
  const t = tally.getStore();
  if (t) t.statements++;
}

/** Statements sent so far in the current tally, or undefined outside one. */
export function statementsSoFar(): number | undefined {
  return tally.getStore()?.statements;
}
