import { type RedisClient } from './redis-client';
import {
  type FleetStats,
  latencyBucket,
  type OutcomeCounts,
  type OutcomeStore,
  statsOf,
} from '../../domain/serving/outcomes';

/**
 * Time slots the counts are kept in: one-second slots for windows up to ten minutes, one-
 * minute slots beyond. Every count goes to both. Keys of one (deployment, version) share a
 * hash tag, so a window is read by one script on one Redis Cluster node.
 */
const RESOLUTIONS = [
  { ms: 1_000, ttlSeconds: 3_600, maxWindowMs: 600_000 },
  { ms: 60_000, ttlSeconds: 48 * 3_600, maxWindowMs: Infinity },
] as const;

/** KEYS: the slots of a window. Returns each slot's hash as a flat field/value list. */
const READ = `
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end
return out`;

interface Pending {
  deploymentId: string;
  versionId: string;
  at: number;
  n: number;
  errors: number;
  latency: Map<number, number>;
  queueSum: number;
  queueArrivals: number;
}

interface WithRead {
  aetherOutcomes(n: number, ...keys: string[]): Promise<string[][]>;
}

/**
 * The fleet's request outcomes in Redis (docs/adr/0028). Counting is in memory on the request
 * path; `flush` (every `flushMs`, and before every read) adds the counts with HINCRBY, so
 * concurrent processes sum up and a read sees every process's flushed counts.
 */
export class RedisOutcomeStore implements OutcomeStore {
  private pending = new Map<string, Pending>();
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    flushMs = 200,
  ) {
    if (!('aetherOutcomes' in redis)) redis.defineCommand('aetherOutcomes', { lua: READ });
    this.timer = setInterval(() => void this.flush().catch(() => undefined), flushMs);
    this.timer.unref();
  }

  record(
    deploymentId: string,
    versionId: string,
    ok: boolean,
    latencyMs: number,
    at: number,
  ): void {
    const p = this.slot(deploymentId, versionId, at);
    p.n++;
    if (!ok) p.errors++;
    else {
      const b = latencyBucket(latencyMs);
      p.latency.set(b, (p.latency.get(b) ?? 0) + 1);
    }
  }

  recordPressure(
    deploymentId: string,
    versionId: string,
    meanDepth: number,
    arrivals: number,
    at: number,
  ): void {
    if (arrivals <= 0) return;
    const p = this.slot(deploymentId, versionId, at);
    // Kept in thousandths: HINCRBY adds integers.
    p.queueSum += Math.round(meanDepth * arrivals * 1_000);
    p.queueArrivals += arrivals;
  }

  private slot(deploymentId: string, versionId: string, at: number): Pending {
    const second = Math.floor(at / 1_000) * 1_000;
    const k = `${deploymentId}|${versionId}|${second}`;
    let p = this.pending.get(k);
    if (!p)
      this.pending.set(
        k,
        (p = {
          deploymentId,
          versionId,
          at: second,
          n: 0,
          errors: 0,
          latency: new Map(),
          queueSum: 0,
          queueArrivals: 0,
        }),
      );
    return p;
  }

  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.pending.size) return;
      const batch = this.pending;
      this.pending = new Map();
      const byVersion = new Map<string, Pending[]>();
      for (const p of batch.values()) {
        const g = `${p.deploymentId}|${p.versionId}`;
        byVersion.set(g, [...(byVersion.get(g) ?? []), p]);
      }
      try {
        await Promise.all(
          [...byVersion.values()].map((group) => {
            const pipe = this.redis.pipeline();
            for (const p of group)
              for (const r of RESOLUTIONS) {
                const key = this.key(p.deploymentId, p.versionId, r.ms, Math.floor(p.at / r.ms));
                if (p.n) pipe.hincrby(key, 'n', p.n);
                if (p.errors) pipe.hincrby(key, 'e', p.errors);
                if (p.queueArrivals) {
                  pipe.hincrby(key, 'qs', p.queueSum);
                  pipe.hincrby(key, 'qa', p.queueArrivals);
                }
                for (const [b, c] of p.latency) pipe.hincrby(key, `h${b}`, c);
                pipe.expire(key, r.ttlSeconds);
              }
            return pipe.exec();
          }),
        );
      } catch (e) {
        // Redis away: keep the counts for the next flush.
        for (const [k, p] of batch) {
          const q = this.pending.get(k);
          if (!q) this.pending.set(k, p);
          else {
            q.n += p.n;
            q.errors += p.errors;
            q.queueSum += p.queueSum;
            q.queueArrivals += p.queueArrivals;
            for (const [b, c] of p.latency) q.latency.set(b, (q.latency.get(b) ?? 0) + c);
          }
        }
        throw e;
      }
    });
    return this.flushing;
  }

  async stats(
    deploymentId: string,
    versionId: string,
    now: number,
    windowMs: number,
  ): Promise<FleetStats> {
    await this.flush().catch(() => undefined);
    const r = RESOLUTIONS.find((x) => windowMs <= x.maxWindowMs) ?? RESOLUTIONS[1];
    const last = Math.floor(now / r.ms);
    const first = Math.floor((now - windowMs) / r.ms) + 1;
    const slots: number[] = [];
    for (let s = Math.max(first, last - 5_000); s <= last; s++) slots.push(s);
    const keys = slots.map((s) => this.key(deploymentId, versionId, r.ms, s));
    const hashes = await (this.redis as unknown as WithRead).aetherOutcomes(keys.length, ...keys);
    const c: OutcomeCounts = {
      n: 0,
      errors: 0,
      latency: new Map(),
      firstAt: null,
      queueSum: 0,
      queueArrivals: 0,
    };
    hashes.forEach((flat, i) => {
      for (let j = 0; j < flat.length; j += 2) {
        const field = flat[j];
        const v = Number(flat[j + 1]);
        if (field === 'n') {
          c.n += v;
          if (v > 0 && c.firstAt === null) c.firstAt = slots[i] * r.ms;
        } else if (field === 'e') c.errors += v;
        else if (field === 'qs') c.queueSum += v / 1_000;
        else if (field === 'qa') c.queueArrivals += v;
        else {
          const b = Number(field.slice(1));
          c.latency.set(b, (c.latency.get(b) ?? 0) + v);
        }
      }
    });
    return statsOf(c);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private key(deploymentId: string, versionId: string, resolutionMs: number, slot: number): string {
    return `${this.prefix}{out:${deploymentId}:${versionId}}:${resolutionMs}:${slot}`;
  }
}
