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
/** Either problem, in one pass: most strings have neither. */
const NUL_OR_LONE_SURROGATE = /[\0\p{Cs}]/u;

export function textProblem(s: string): TextProblem | null {
  if (s.length > MAX_TEXT_LENGTH) return 'TOO_LONG';
  if (!NUL_OR_LONE_SURROGATE.test(s)) return null;
  if (s.includes('\u0000')) return 'NUL_CHARACTER';
  if (LONE_SURROGATE.test(s)) return 'LONE_SURROGATE';
  return null;
}

/** The first bad string in a value (object keys included), or null. */
export function findBadText(value: unknown, path: string, depth = 0): BadText | null {
  const found = search(value, depth);
  if (!found) return null;
  // The path is spelled only for what was found: a clean value allocates none.
  let at = path;
  for (let i = found.trail.length - 1; i >= 0; i--) {
    const step = found.trail[i];
    at = typeof step === 'number' ? `${at}[${step}]` : at ? `${at}.${step}` : step;
  }
  return { path: found.key ? `${at} (a key)` : at, problem: found.problem };
}

/** What `search` found: the steps to it, innermost first, and whether it is a key. */
interface Found {
  problem: TextProblem;
  trail: (string | number)[];
  key: boolean;
}

function search(value: unknown, depth: number): Found | null {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem ? { problem, trail: [], key: false } : null;
  }
  if (value === null || typeof value !== 'object') return null;
  if (depth >= MAX_INPUT_DEPTH) return { problem: 'TOO_DEEP', trail: [], key: false };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = search(value[i], depth + 1);
      if (found) {
        found.trail.push(i);
        return found;
      }
    }
    return null;
  }
  if (value instanceof Date) return null;
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record)) {
    const keyProblem = textProblem(k);
    if (keyProblem) return { problem: keyProblem, trail: [], key: true };
    const found = search(record[k], depth + 1);
    if (found) {
      found.trail.push(k);
      return found;
    }
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
