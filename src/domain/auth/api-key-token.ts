import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Token format: `aek_<prefix>_<secret>`. The prefix (8 hex chars) is a lookup handle
 * stored in clear; the 32-byte random secret is stored only as its SHA-256. A fast hash
 * is right here: the secret has 256 bits of entropy, so there is nothing to brute-force,
 * and verification sits on every request's path (see docs/adr/0004).
 */
const TOKEN_RE = /^aek_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$/;

export interface IssuedToken {
  token: string;
  prefix: string;
  secretHash: string;
}

export function issueToken(): IssuedToken {
  const prefix = randomBytes(4).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `aek_${prefix}_${secret}`, prefix, secretHash: hashSecret(secret) };
}

export function parseToken(token: string): { prefix: string; secret: string } | null {
  const m = TOKEN_RE.exec(token);
  return m ? { prefix: m[1], secret: m[2] } : null;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
