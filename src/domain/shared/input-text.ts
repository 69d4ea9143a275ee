import { InvalidInputError } from './domain-error';

/**
 * One rule for every string a caller sends, whichever door it comes in by (GraphQL
 * arguments, REST bodies and paths): no NUL (PostgreSQL text cannot hold it), no lone UTF-16
 * surrogates (not text at all: they cannot be encoded as UTF-8), and no value longer than
 * MAX_TEXT_LENGTH. Modules add their own, tighter limits (names, entity keys) on top.
 */
export const MAX_TEXT_LENGTH = 64 * 1024;
/** Nesting deeper than this in a JSON value is refused before anything walks it further. */
export const MAX_INPUT_DEPTH = 32;

export enum InputTextErrorCode {
  INVALID_TEXT = 'INVALID_TEXT',
}

export type TextProblem = 'NUL_CHARACTER' | 'LONE_SURROGATE' | 'TOO_LONG' | 'TOO_DEEP';

export interface BadText {
  /** Where the value sits, like `input.records[3].entityKey`. */
  path: string;
  problem: TextProblem;
}

const DESCRIBE: Record<TextProblem, string> = {
  NUL_CHARACTER: 'contains a NUL character',
  LONE_SURROGATE: 'is not valid Unicode (a lone surrogate)',
  TOO_LONG: `is longer than ${MAX_TEXT_LENGTH} characters`,
  TOO_DEEP: `is nested deeper than ${MAX_INPUT_DEPTH} levels`,
};

/** In `u` mode a valid pair reads as one astral code point: only lone halves match. */
const LONE_SURROGATE = /\p{Cs}/u;

export function textProblem(s: string): TextProblem | null {
  if (s.length > MAX_TEXT_LENGTH) return 'TOO_LONG';
  if (s.includes('\u0000')) return 'NUL_CHARACTER';
  if (LONE_SURROGATE.test(s)) return 'LONE_SURROGATE';
  return null;
}

/** The first bad string in a value (object keys included), or null. */
export function findBadText(value: unknown, path: string, depth = 0): BadText | null {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem ? { path, problem } : null;
  }
  if (value === null || typeof value !== 'object') return null;
  if (depth >= MAX_INPUT_DEPTH) return { path, problem: 'TOO_DEEP' };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = findBadText(value[i], `${path}[${i}]`, depth + 1);
      if (bad) return bad;
    }
    return null;
  }
  if (value instanceof Date) return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const keyProblem = textProblem(k);
    if (keyProblem) return { path: `${path} (a key)`, problem: keyProblem };
    const bad = findBadText(v, path ? `${path}.${k}` : k, depth + 1);
    if (bad) return bad;
  }
  return null;
}

export function describeTextProblem(problem: TextProblem): string {
  return DESCRIBE[problem];
}

export function badTextError(bad: BadText): InvalidInputError {
  return new InvalidInputError(
    InputTextErrorCode.INVALID_TEXT,
    `Argument \`${bad.path}\` ${DESCRIBE[bad.problem]}`,
    { argument: bad.path, problem: bad.problem },
  );
}

/** Throws BAD_USER_INPUT (INVALID_TEXT) naming the first bad string in `value`. */
export function assertCleanText(value: unknown, path: string): void {
  const bad = findBadText(value, path);
  if (bad) throw badTextError(bad);
}
