import { DomainError, ErrorCategory } from '../domain/shared/domain-error';

export enum DependencyErrorCode {
  DEPENDENCY_UNAVAILABLE = 'DEPENDENCY_UNAVAILABLE',
}

const REDIS =
  /Command timed out|Connection is closed|enableOfflineQueue|Reached the max retries per request|ClusterAllFailed|CLUSTERDOWN|LOADING Redis|MISCONF/;
const POSTGRES =
  /Query read timeout|timeout exceeded when trying to connect|Connection terminated|terminating connection|the database system is (starting up|shutting down)|canceling statement due to statement timeout/;
/** SQLSTATE classes that say "the server could not do it now", not "the request is wrong". */
const PG_RETRYABLE = /^(08|53|57)/;
const NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH']);

/**
 * Failures of Redis or PostgreSQL (timeouts, lost connections, a server shutting down) as
 * retryable domain errors (503 SERVICE_UNAVAILABLE naming the dependency), so a stalled
 * dependency answers fast with a code instead of as an internal error.
 */
export function classifyDependencyError(err: unknown): DomainError | null {
  if (!(err instanceof Error)) return null;
  const driver = (err as { driverError?: unknown }).driverError;
  const cause = driver instanceof Error ? driver : err;
  const code = String((cause as { code?: unknown }).code ?? '');
  const text = `${cause.name} ${cause.message}`;
  let dependency: string | null = null;
  if (REDIS.test(text) || cause.name === 'MaxRetriesPerRequestError') dependency = 'redis';
  else if (POSTGRES.test(text) || (driver && PG_RETRYABLE.test(code))) dependency = 'postgres';
  else if (NET.has(code)) dependency = 'a backing service';
  if (!dependency) return null;
  return new DomainError(
    ErrorCategory.UNAVAILABLE,
    DependencyErrorCode.DEPENDENCY_UNAVAILABLE,
    `The platform could not reach ${dependency} in time; retry shortly`,
    { dependency },
  );
}
