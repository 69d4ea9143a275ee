/**
 * Traffic assignment by consistent hashing of the request key, so one key (a user) sees one
 * version for the life of an experiment.
 *
 * - Canary: the key's bucket in [0, 1) is fixed; a key is in the canary while its bucket is
 *   below the canary's share. Stepping the share up only moves keys from baseline to canary,
 *   never back and forth.
 * - A/B (weighted arms): weighted rendezvous hashing. Each arm scores the key; the highest
 *   score wins. Adding an arm moves only the keys the new arm wins; removing one moves only
 *   the keys it had.
 */
export function bucketOf(key: string, salt: string): number {
  return hash32(`${salt}\u0000${key}`) / 2 ** 32;
}

export function inCanary(key: string, endpoint: string, share: number): boolean {
  return bucketOf(key, `canary:${endpoint}`) < share;
}

export function pickArm<T extends { id: string; weight: number }>(
  key: string,
  arms: readonly T[],
): T {
  if (!arms.length) throw new Error('no arms to pick from');
  let best = arms[0];
  let bestScore = -Infinity;
  for (const arm of arms) {
    if (arm.weight <= 0) continue;
    // Weighted rendezvous: -w / ln(u) with u uniform in (0, 1) from the (key, arm) hash.
    const u = (hash32(`${arm.id}\u0000${key}`) + 0.5) / 2 ** 32;
    const score = -arm.weight / Math.log(u);
    if (score > bestScore) {
      bestScore = score;
      best = arm;
    }
  }
  return best;
}

/** FNV-1a then a murmur-style finalizer: fast, well mixed, the same in every process. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
