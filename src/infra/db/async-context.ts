import { AsyncLocalStorage } from 'node:async_hooks';
import { type EntityManager } from 'typeorm';

/** The request a piece of work is done for (request-scope.ts). */
export interface RequestScope {
  statements: number;
  open: boolean;
  /** Whether the answer is sent after the scope ends, so it can be held (`holdAnswerUntil`). */
  holdsAnswer: boolean;
  /** `performance.now()` before which the answer must not be sent (0: none). */
  answerAfter: number;
}

/**
 * What an async call chain carries: its request (request-scope.ts), its ambient transaction
 * and the work waiting for that transaction's commit (ambient-transaction.ts). One storage
 * for all three: on Node 20 every storage in use costs a property write on every promise
 * created anywhere, which was about 10 µs of a GraphQL prediction with three (ADR 0015).
 */
export interface AsyncContext {
  request?: RequestScope;
  manager?: EntityManager;
  afterCommit?: (() => void)[];
}

const storage = new AsyncLocalStorage<AsyncContext>();

export function currentContext(): AsyncContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with the current context changed by `change` (an undefined value clears). */
export function runWithContext<T>(change: AsyncContext, fn: () => T): T {
  return storage.run({ ...storage.getStore(), ...change }, fn);
}
