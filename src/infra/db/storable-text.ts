/**
 * PostgreSQL text cannot hold NUL, and jsonb refuses NUL and lone-surrogate escapes. Payloads
 * kept for people to inspect (quarantined records, dead letters) keep such characters as
 * visible escapes (`\u0000`) instead, so storing the evidence of a bad input never fails.
 */
// NUL is exactly what must be escaped here.
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|\p{Cs}/gu;

export function storableText(s: string): string {
  return s.replace(UNSTORABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** JSON of `value` with every string and key made storable (see storableText). */
export function storableJson(value: unknown): string {
  return JSON.stringify(storable(value));
}

function storable(v: unknown): unknown {
  if (typeof v === 'string') return storableText(v);
  if (Array.isArray(v)) return v.map(storable);
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[storableText(k)] = storable(x);
    return out;
  }
  return v;
}

/**
 * Whether a failed statement failed because of the rows it carried (SQLSTATE class 22, data
 * exception, or 23, integrity constraint), which retrying cannot fix, rather than because the
 * database was unreachable or busy, which retrying can.
 */
export function isPoisonError(e: unknown): boolean {
  const driver = (e as { driverError?: { code?: unknown } } | null)?.driverError;
  const code = String(driver?.code ?? (e as { code?: unknown } | null)?.code ?? '');
  return /^(22|23)/.test(code);
}
