import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { Packr } from 'msgpackr';
import { type OnlineKey, type OnlineStore } from '../../domain/features/feature-store.ports';
import { type FeatureValue } from '../../domain/features/feature-definition';
import { type RetentionPolicy } from '../../domain/features/online-state';
import { type FeatureEvent } from '../../domain/features/point-in-time';
import { holds, type RedisKeyTracker, type Trust } from './key-tracker';
import { execPerItem, type RedisClient } from './redis-client';

type PackedEvent = [
  format: number,
  eventId: string,
  eventTs: number,
  createdTs: number,
  values: FeatureValue[],
];

/** Bumped when the packed layout changes; a member in another layout reads as an error. */
const FORMAT = 1;
/**
 * The longest a tracked stamp is trusted without asking: a backstop should the invalidation
 * connection stop delivering without the process noticing (a half-open socket).
 */
export const TRUST_MS = 1_000;

interface Decoded {
  stamp: string;
  events: FeatureEvent[];
  trust: Trust | null;
}

const packr = new Packr({ useRecords: false, moreTypes: false });

/**
 * Merges an update into one entity's online state, atomically (docs/adr/0022; the rules are
 * RetentionPolicy's). Every key it touches is declared and they share one hash tag.
 *
 * KEYS: 1 events (hash: id -> packed version), 2 event times (sorted set: id by event time),
 *       3 known times (hash: id -> known time of the version held), 4 stamp
 * ARGV: 1 widest window in ms (0: none), 2 trim step in ms (0: every update), 3 a fresh stamp,
 *       then per event: id, event time, known time, packed version
 */
const MERGE = `
local window, step = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = (#ARGV - 3) / 4
local mine = {}
local batchTop = nil
for i = 0, n - 1 do
  mine[ARGV[4 + 4 * i]] = true
  local ts = tonumber(ARGV[5 + 4 * i])
  if batchTop == nil or ts > batchTop then batchTop = ts end
end
local newest = nil
local top = redis.call('ZREVRANGE', KEYS[2], 0, n, 'WITHSCORES')
for j = 1, #top, 2 do
  if not mine[top[j]] then
    newest = tonumber(top[j + 1])
    break
  end
end
local base = newest or batchTop
local bound = nil
if base ~= nil then
  if window > 0 then bound = base - window else bound = base end
end
local function forgotten(ts)
  if bound == nil then return false end
  if window > 0 then return ts <= bound end
  return ts < bound
end
local changed = 0
for i = 0, n - 1 do
  local id, ts, cts = ARGV[4 + 4 * i], tonumber(ARGV[5 + 4 * i]), tonumber(ARGV[6 + 4 * i])
  local held = redis.call('HGET', KEYS[3], id)
  if (not held) or tonumber(held) < cts then
    if not forgotten(ts) then
      redis.call('HSET', KEYS[1], id, ARGV[7 + 4 * i])
      redis.call('HSET', KEYS[3], id, ARGV[6 + 4 * i])
      redis.call('ZADD', KEYS[2], ARGV[5 + 4 * i], id)
      changed = changed + 1
    elseif held then
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('ZREM', KEYS[2], id)
      changed = changed + 1
    end
  end
end
if newest ~= nil then
  local after = newest
  if batchTop ~= nil and batchTop > after then after = batchTop end
  if step == 0 or math.floor(after / step) > math.floor(newest / step) then
    local range = string.format('%.17g', bound)
    if window == 0 then range = '(' .. range end
    local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', range)
    for c = 1, #old, 1000 do
      local part = { unpack(old, c, math.min(c + 999, #old)) }
      redis.call('HDEL', KEYS[1], unpack(part))
      redis.call('HDEL', KEYS[3], unpack(part))
    end
    if #old > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', range)
      changed = changed + #old
    end
  end
end
if changed > 0 then redis.call('SET', KEYS[4], ARGV[3]) end
return changed
`;

type Scripted = RedisClient & {
  aetherMergeOnline(...args: (string | number | Buffer)[]): Promise<number>;
};

/**
 * Per (view version, entity): the newest known version of each event the features still
 * need, packed with MessagePack (values positional, in the version's event layout), in a
 * hash by event id, with a sorted set of the ids by event time for lateness and trimming and
 * a hash of the known times held. A read is one HVALS, and reads of many entities or
 * versions are one pipelined round trip; decoding builds no per-name object. An update of an
 * entity is one script, so concurrent consumers never lose or double each other's events.
 * Keys are per entity with one hash tag per entity, so they shard across a Redis Cluster.
 */
export class RedisOnlineStore implements OnlineStore {
  /** By stamp key: the decoded events, the stamp they were read under, and how long that
   * stamp may be trusted without asking (tracked keys only; null: ask). */
  private readonly decoded = new Map<string, Decoded>();
  private readonly redis: Scripted;
  private readonly tracker: RedisKeyTracker | null;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    /** Keys whose decoded events are kept (least recently read forgotten first). */
    private readonly cachedKeys = 10_000,
    /**
     * Client-side caching: stamps read through it are trusted, without a round trip, until
     * Redis says they changed (at most TRUST_MS). Without one, every read asks for the stamps.
     */
    tracker: RedisKeyTracker | null = null,
  ) {
    // A cluster's keys live on many nodes; one tracker follows one server.
    this.tracker = redis instanceof Cluster ? null : tracker;
    if (!('aetherMergeOnline' in redis))
      redis.defineCommand('aetherMergeOnline', { numberOfKeys: 4, lua: MERGE });
    this.redis = redis as Scripted;
    this.tracker?.onInvalidate((keys) => {
      if (keys === null) for (const e of this.decoded.values()) e.trust = null;
      else
        for (const k of keys) {
          const e = this.decoded.get(k);
          if (e) e.trust = null;
        }
    });
  }

  /** The keys of one (version, entity): one hash tag, so one Redis Cluster slot. */
  keys(k: OnlineKey): { events: string; times: string; known: string; stamp: string } {
    const tag = `{${k.versionId}:${k.entityKey}}`;
    return {
      events: `${this.prefix}ol:${tag}`,
      times: `${this.prefix}olt:${tag}`,
      known: `${this.prefix}olk:${tag}`,
      stamp: `${this.prefix}ols:${tag}`,
    };
  }

  /**
   * The stored events per key. Each key carries a stamp (a random token replaced by every
   * update that changes the key, in the same script), and the decoded events of recently read
   * keys are kept with the stamp they were read under: a read whose stamps all match costs one
   * GET per key and returns the very same arrays, which callers must treat as read-only. A
   * busy entity's window (a thousand events) is then decoded once per write, not per read.
   * With a tracker, a stamp read through it is trusted until Redis reports a change to it (or
   * TRUST_MS passed): a read of unchanged keys then costs no round trip at all.
   */
  async readMany(keys: readonly OnlineKey[]): Promise<FeatureEvent[][]> {
    if (keys.length === 0) return [];
    const names = keys.map((k) => this.keys(k));
    const out: FeatureEvent[][] = new Array<FeatureEvent[]>(keys.length);
    const ask: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const hit = this.decoded.get(names[i].stamp);
      if (hit && holds(hit.trust)) {
        this.touch(names[i].stamp, hit);
        out[i] = hit.events;
      } else ask.push(i);
    }
    if (!ask.length) return out;
    const stampKeys = ask.map((i) => names[i].stamp);
    const tracked = this.tracker?.tracking ? this.tracker : null;
    const watch = tracked?.watch(stampKeys, TRUST_MS);
    let stamps: (string | null)[];
    try {
      // One MGET on one server; on a cluster each key's GET goes to its own node.
      stamps =
        this.redis instanceof Cluster
          ? (await execPerItem(this.redis, stampKeys, (p, k) => p.get(k))).map(([err, v]) => {
              if (err) throw err;
              return v as string | null;
            })
          : await (tracked ? tracked.reader : this.redis).mget(stampKeys);
    } catch (e) {
      watch?.release();
      throw e;
    }
    const trusted = watch?.settle();
    const missed: number[] = [];
    ask.forEach((i, j) => {
      const hit = stamps[j] === null ? undefined : this.decoded.get(names[i].stamp);
      if (hit && hit.stamp === stamps[j]) {
        hit.trust = trusted?.[j] ?? null;
        this.touch(names[i].stamp, hit);
        out[i] = hit.events;
      } else missed.push(i);
    });
    if (!missed.length) return out;
    // The stamp and the events of a key read together (one MULTI per key on a cluster).
    const res = await execPerItem(
      this.redis,
      missed,
      (p, i) => p.get(names[i].stamp).hvalsBuffer(names[i].events),
      true,
    );
    missed.forEach((i, j) => {
      const [stampErr, stamp] = res[2 * j];
      const [err, members] = res[2 * j + 1];
      if (stampErr || err) throw stampErr ?? err;
      out[i] = (members as Buffer[]).map(unpack);
      if (typeof stamp === 'string') this.remember(names[i].stamp, stamp, out[i]);
    });
    return out;
  }

  async newestEventTimes(
    keys: readonly (OnlineKey & { excluding: ReadonlySet<string> })[],
  ): Promise<(number | undefined)[]> {
    if (keys.length === 0) return [];
    // The newest ids, one more than can be excluded: one event per id is held.
    const res = await execPerItem(this.redis, keys, (p, k) =>
      p.zrevrange(this.keys(k).times, 0, k.excluding.size, 'WITHSCORES'),
    );
    return keys.map((k, i) => {
      const [err, v] = res[i];
      if (err) throw err;
      const flat = v as string[];
      for (let j = 0; j + 1 < flat.length; j += 2)
        if (!k.excluding.has(flat[j])) return Number(flat[j + 1]);
      return undefined;
    });
  }

  async merge(
    retention: RetentionPolicy,
    entries: readonly (OnlineKey & { events: readonly FeatureEvent[] })[],
  ): Promise<number[]> {
    if (!entries.length) return [];
    // One script per entity, pipelined: each is atomic on its own keys, and no two entities
    // need to change together. Trust in the keys ends whether or not the scripts answered
    // (they may have run).
    const res = await execPerItem(this.redis, entries, (p, e) => {
      const k = this.keys(e);
      const args: (string | number | Buffer)[] = [
        k.events,
        k.times,
        k.known,
        k.stamp,
        retention.windowMs,
        retention.trimStepMs,
        randomUUID(),
      ];
      for (const ev of e.events)
        args.push(ev.eventId, String(ev.eventTs), String(ev.createdTs), pack(ev));
      void (p as unknown as Scripted).aetherMergeOnline(...args);
    }).finally(() => this.tracker?.changedHere(entries.map((e) => this.keys(e).stamp)));
    return res.map(([err, changed]) => {
      if (err) throw err;
      return changed as number;
    });
  }

  /** Read through the main connection (not tracked): trusted once a tracked read confirms it. */
  private remember(key: string, stamp: string, events: FeatureEvent[]): void {
    this.touch(key, { stamp, events, trust: null });
    if (this.decoded.size > this.cachedKeys)
      this.decoded.delete(this.decoded.keys().next().value as string);
  }

  /** Most recently used last: Map order is the eviction order. */
  private touch(key: string, entry: Decoded): void {
    this.decoded.delete(key);
    this.decoded.set(key, entry);
  }
}

function pack(e: FeatureEvent): Buffer {
  const packed: PackedEvent = [FORMAT, e.eventId, e.eventTs, e.createdTs, e.values];
  return packr.pack(packed);
}

function unpack(raw: Buffer): FeatureEvent {
  const [format, eventId, eventTs, createdTs, values] = packr.unpack(raw) as PackedEvent;
  if (format !== FORMAT) throw new Error(`online event in unknown format ${String(format)}`);
  return { eventId, eventTs, createdTs, values };
}
