import { InvalidInputError } from './domain-error';

/** Relay-style page request, already validated. */
export interface PageRequest {
  /** Number of items wanted (1..MAX_PAGE_SIZE). */
  limit: number;
  /** Keyset position to continue from; exclusive. */
  after?: Cursor;
  /** When true the page is read backwards from `before` (Relay's `last`/`before`). */
  backward: boolean;
  before?: Cursor;
}

/** Keyset position: creation time plus id as a tie-breaker, so pages never skip or repeat. */
export interface Cursor {
  createdAt: Date;
  id: string;
}

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export enum PaginationErrorCode {
  INVALID_PAGE_SIZE = 'INVALID_PAGE_SIZE',
  INVALID_CURSOR = 'INVALID_CURSOR',
  CONFLICTING_PAGE_ARGS = 'CONFLICTING_PAGE_ARGS',
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.createdAt.toISOString()}|${c.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(raw: string): Cursor {
  const text = Buffer.from(raw, 'base64url').toString('utf8');
  const sep = text.indexOf('|');
  const createdAt = new Date(text.slice(0, sep));
  const id = text.slice(sep + 1);
  if (sep < 0 || Number.isNaN(createdAt.getTime()) || id.length === 0) {
    throw new InvalidInputError(PaginationErrorCode.INVALID_CURSOR, `Malformed cursor "${raw}"`);
  }
  return { createdAt, id };
}

export interface ConnectionArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export function toPageRequest(args: ConnectionArgs): PageRequest {
  if (args.first != null && args.last != null) {
    throw new InvalidInputError(
      PaginationErrorCode.CONFLICTING_PAGE_ARGS,
      'Pass either `first` or `last`, not both',
    );
  }
  const backward = args.last != null;
  const limit = (backward ? args.last : args.first) ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new InvalidInputError(
      PaginationErrorCode.INVALID_PAGE_SIZE,
      `Page size must be an integer between 1 and ${MAX_PAGE_SIZE} (got ${limit})`,
      { max: MAX_PAGE_SIZE },
    );
  }
  return {
    limit,
    backward,
    after: args.after ? decodeCursor(args.after) : undefined,
    before: args.before ? decodeCursor(args.before) : undefined,
  };
}

/**
 * Turns `limit + 1` rows fetched in keyset order into a page; the extra row only tells
 * whether another page exists.
 */
export function toPage<T>(rows: T[], req: PageRequest): Page<T> {
  const more = rows.length > req.limit;
  const items = more ? rows.slice(0, req.limit) : rows;
  if (req.backward) {
    return {
      items: items.reverse(),
      hasNextPage: req.before !== undefined,
      hasPreviousPage: more,
    };
  }
  return { items, hasNextPage: more, hasPreviousPage: req.after !== undefined };
}
