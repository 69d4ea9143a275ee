import {
  type DataSource,
  type EntityManager,
  type EntityTarget,
  type ObjectLiteral,
} from 'typeorm';
import { type UnitOfWork } from '../../domain/shared/unit-of-work';
import { currentContext, runWithContext } from './async-context';

/**
 * Transactions that reach every repository without being passed around. Inside
 * `SqlUnitOfWork.run`, the transaction's EntityManager is the ambient one (AsyncLocalStorage),
 * and the DataSource every repository holds (see `ambientDataSource`) sends its queries
 * there: a domain service can make a change and record its event in the outbox in one
 * transaction (docs/adr/0027) without knowing what a transaction is made of.
 */
export function currentManager(): EntityManager | undefined {
  return currentContext()?.manager;
}

export class SqlUnitOfWork implements UnitOfWork {
  constructor(private readonly ds: DataSource) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (currentManager()) return fn();
    const after: (() => void)[] = [];
    const result = await this.ds.transaction((m) =>
      runWithContext({ manager: m, afterCommit: after }, fn),
    );
    // Committed: work that must not see (or join) the finished transaction runs outside it.
    runWithContext({ manager: undefined, afterCommit: undefined }, () => after.forEach((f) => f()));
    return result;
  }
}

/** Runs `f` once the ambient transaction commits (at once when there is none). */
export function onCommit(f: () => void): void {
  const c = currentContext();
  if (c?.afterCommit && c.manager) c.afterCommit.push(f);
  else f();
}

/**
 * The DataSource as repositories see it: queries, transactions, repositories and query
 * builders go to the ambient transaction when there is one, else to the pool as before. A
 * repository's own `transaction` inside an ambient one joins it.
 */
export function ambientDataSource(ds: DataSource): DataSource {
  return new Proxy(ds, {
    get(target, prop, receiver) {
      switch (prop) {
        case 'query':
          return (sql: string, params?: unknown[]) =>
            (currentManager() ?? target).query(sql, params);
        case 'transaction':
          return <T>(fn: (m: EntityManager) => Promise<T>): Promise<T> => {
            const m = currentManager();
            if (m) return fn(m);
            return target.transaction((tm) => runWithContext({ manager: tm }, () => fn(tm)));
          };
        case 'manager':
          return currentManager() ?? target.manager;
        case 'getRepository':
          return <E extends ObjectLiteral>(entity: EntityTarget<E>) =>
            new Proxy(target.getRepository(entity), {
              get(repo, p) {
                const current = currentManager()?.getRepository(entity) ?? repo;
                const v = Reflect.get(current, p, current) as unknown;
                return typeof v === 'function'
                  ? (v as (...a: unknown[]) => unknown).bind(current)
                  : v;
              },
            });
        default:
          return Reflect.get(target, prop, receiver) as unknown;
      }
    },
  });
}
