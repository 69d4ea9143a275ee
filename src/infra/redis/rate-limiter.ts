import { type RedisClient } from './redis-client';
import {
  type RateDecision,
  type RateLimiter,
  type RateLimitPolicy,
} from '../../domain/auth/rate-limit';

/**
 * GCRA in one Lua script on one key per API key: the key holds the theoretical arrival time
 * (TAT) in ms of Redis's own clock, so every api process charges the same budget whatever
 * its own clock says. Allowed when TAT - burst window <= now.
 *
 * KEYS[1] the key's TAT; ARGV: emission interval ms, burst window ms.
 * Returns 0 when allowed, else the ms until a retry can succeed.
 */
const GCRA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nextTat = tat + interval
local wait = nextTat - window - now
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tostring(nextTat), 'PX', math.ceil(nextTat - now) + 1000)
return 0`;

interface WithGcra {
  aetherGcra(key: string, interval: number, window: number): Promise<number>;
}

/** Fails open: with Redis away requests are served (readiness reports Redis), not refused. */
export class RedisRateLimiter implements RateLimiter {
  private readonly interval: number;
  private readonly window: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    policy: RateLimitPolicy,
  ) {
    this.interval = 1000 / policy.perSecond;
    this.window = this.interval * Math.max(1, policy.burst);
    if (!('aetherGcra' in redis)) redis.defineCommand('aetherGcra', { numberOfKeys: 1, lua: GCRA });
  }

  async take(keyId: string): Promise<RateDecision> {
    let wait: number;
    try {
      wait = await (this.redis as unknown as WithGcra).aetherGcra(
        `${this.prefix}{rate:${keyId}}`,
        this.interval,
        this.window,
      );
    } catch {
      return { allowed: true, retryAfterMs: 0 };
    }
    return wait > 0 ? { allowed: false, retryAfterMs: wait } : { allowed: true, retryAfterMs: 0 };
  }
}
