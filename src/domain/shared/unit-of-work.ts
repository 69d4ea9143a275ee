/**
 * Port: runs `fn` in one transaction of the metadata database. Every change the services
 * make inside it, and every event they publish (the outbox), commits together or not at all.
 * Nested runs join the outer one.
 */
export interface UnitOfWork {
  run<T>(fn: () => Promise<T>): Promise<T>;
}

/** For code that needs no transaction (tests of pure rules). */
export const NO_TRANSACTION: UnitOfWork = { run: (fn) => fn() };
