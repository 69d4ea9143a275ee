/**
 * Every failure a client can see is a DomainError: a category that decides how it is
 * reported (the GraphQL layer maps categories to `extensions.code` in one exhaustive
 * mapper) and a module-specific reason code that says exactly what went wrong.
 */
export enum ErrorCategory {
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  FORBIDDEN = 'FORBIDDEN',
  INVALID_INPUT = 'INVALID_INPUT',
  NOT_FOUND = 'NOT_FOUND',
  CONFLICT = 'CONFLICT',
  /** Something the platform depends on failed; a retry may succeed. */
  UNAVAILABLE = 'UNAVAILABLE',
  /** The caller spent its request budget; it may retry after `details.retryAfterMs`. */
  RATE_LIMITED = 'RATE_LIMITED',
  /** A broken invariant (corrupt data, bug); retrying will not help. */
  INTERNAL = 'INTERNAL',
}

export class DomainError extends Error {
  constructor(
    readonly category: ErrorCategory,
    /** Module-specific reason, e.g. `API_KEY_REVOKED`. Stable: clients may branch on it. */
    readonly reason: string,
    message: string,
    /** Extra facts safe to show a client (names, allowed values); never secrets or SQL. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }

  get retryable(): boolean {
    return (
      this.category === ErrorCategory.UNAVAILABLE || this.category === ErrorCategory.RATE_LIMITED
    );
  }
}

export class NotFoundError extends DomainError {
  constructor(reason: string, message: string, details?: Record<string, unknown>) {
    super(ErrorCategory.NOT_FOUND, reason, message, details);
  }
}

export class InvalidInputError extends DomainError {
  constructor(reason: string, message: string, details?: Record<string, unknown>) {
    super(ErrorCategory.INVALID_INPUT, reason, message, details);
  }
}

export class ConflictError extends DomainError {
  constructor(reason: string, message: string, details?: Record<string, unknown>) {
    super(ErrorCategory.CONFLICT, reason, message, details);
  }
}
