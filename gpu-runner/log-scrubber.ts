/**
 * What a trainer prints becomes `Run.logTail`, which any VIEWER reads. A sandboxed trainer is
 * given no key (trainer-sandbox.ts), so this is the second line of defence: every API key
 * token (`aek_<prefix>_<secret>`, src/domain/auth/api-key-token.ts) and the runner's own
 * key, whatever its shape, are replaced before a line is kept. NUL bytes are replaced too:
 * PostgreSQL cannot store them, and a log holding one could never be reported.
 */
export const REDACTED = '[redacted]';

// Wider than the exact token format on purpose: a token cut short (a truncated line, a
// wrapped log) still loses whatever part of its secret is left.
const TOKEN = /aek_[A-Za-z0-9_-]*/g;

// A "secret" this short would redact ordinary words; real keys are 60+ characters.
const MIN_SECRET_LENGTH = 12;

export type Scrubber = (text: string) => string;

export function createLogScrubber(secrets: readonly string[]): Scrubber {
  const literal = secrets
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const secret = literal.length ? new RegExp(literal.join('|'), 'g') : null;
  return (text) => {
    const once = secret ? text.replace(secret, REDACTED) : text;
    return once.replace(TOKEN, `aek_${REDACTED}`).replace(/\0/g, '\uFFFD');
  };
}
