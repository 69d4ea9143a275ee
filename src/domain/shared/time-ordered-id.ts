const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const pool = new Uint8Array(4_096);
let next = pool.length;

/**
 * A UUID version 7 (RFC 9562): the 48-bit Unix time in ms, then 74 random bits. Rows keyed by
 * it arrive in key order, so a table's primary key index grows at its right edge instead of
 * touching a random page per row (ADR 0038). Random bits come from the platform's CSPRNG, a
 * pool at a time. Never throws: a prediction already scored always gets its id.
 */
export function timeOrderedId(at: number): string {
  // A clock outside what 48 bits hold (before 1970, past the year 10889, not a number) still
  // gets an id: its time is clamped, its random bits keep it unique.
  const ms = Number.isFinite(at) ? Math.min(Math.max(Math.floor(at), 0), 2 ** 48 - 1) : 0;
  if (next + 10 > pool.length) {
    globalThis.crypto.getRandomValues(pool);
    next = 0;
  }
  const o = next;
  next += 10;
  const t = ms.toString(16).padStart(12, '0');
  const version = (0x7000 | ((pool[o] & 0x0f) << 8) | pool[o + 1]).toString(16);
  const variant = (0x8000 | ((pool[o + 2] & 0x3f) << 8) | pool[o + 3]).toString(16);
  return (
    `${t.slice(0, 8)}-${t.slice(8)}-${version}-${variant}-` +
    HEX[pool[o + 4]] +
    HEX[pool[o + 5]] +
    HEX[pool[o + 6]] +
    HEX[pool[o + 7]] +
    HEX[pool[o + 8]] +
    HEX[pool[o + 9]]
  );
}
