import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { Packr } from 'msgpackr';
import { type OnlineKey, type OnlineStore } from '../../domain/features/feature-store.ports';
import { type FeatureValue } from '../../domain/features/feature-definition';
import { type Retention } from '../../domain/features/online-state';
import { type FeatureEvent } from '../../domain/features/point-in-time';

type PackedEvent = [
  format: number,
  eventId: string,
  eventTs: number,
  createdTs: number,
  values: FeatureValue[],
];

/** Bumped when the packed layout changes; a member in another layout reads as an error. */
const FORMAT = 1;

const packr = new Packr({ useRecords: false, moreTypes: false });

/**
 * One sorted set per (view version, entity): each member one event packed with MessagePack
 * (values positional, in the version's event layout), scored by event time. A read is one
 * ZRANGE, and reads of many entities or versions are one pipelined round trip; decoding
 * builds no per-name object. Ingestion only adds members and trims by score, O(log n) per
 * event, so writers never read-modify-write and concurrent consumers cannot lose each
 * other's events. Keys are per entity, so they shard across a Redis Cluster.
 */
export class RedisOnlineStore implements OnlineStore {
  private readonly decoded = new Map<string, { stamp: string; events: FeatureEvent[] }>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** Keys whose decoded events are kept (least recently read forgotten first). */
    private readonly cachedKeys = 10_000,
  ) {}

  key(k: OnlineKey): string {
    return `${this.prefix}ol:${k.versionId}:${k.entityKey}`;
  }

  private stampKey(k: OnlineKey): string {
    return `${this.prefix}ols:${k.versionId}:${k.entityKey}`;
  }

  /**
   * The stored events per key. Each key carries a stamp (a random token replaced in the same
   * MULTI as every write to the key), and the decoded events of recently read keys are kept
   * with the stamp they were read under: a read whose stamps all match costs one GET per
   * key and returns the very same arrays, which callers must treat as read-only. A busy
   * entity's window (a thousand events) is then decoded once per write, not once per read.
   */
  async readMany(keys: readonly OnlineKey[]): Promise<FeatureEvent[][]> {
    if (keys.length === 0) return [];
    const names = keys.map((k) => this.key(k));
    const stamps = await this.redis.mget(keys.map((k) => this.stampKey(k)));
    const out: FeatureEvent[][] = new Array<FeatureEvent[]>(keys.length);
    const missed: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const hit = stamps[i] === null ? undefined : this.decoded.get(names[i]);
      if (hit && hit.stamp === stamps[i]) {
        // Most recently used last: Map order is the eviction order.
        this.decoded.delete(names[i]);
        this.decoded.set(names[i], hit);
        out[i] = hit.events;
      } else missed.push(i);
    }
    if (!missed.length) return out;
    const p = this.redis.multi();
    for (const i of missed) p.get(this.stampKey(keys[i])).zrangeBuffer(names[i], 0, -1);
    const res = (await p.exec()) ?? [];
    missed.forEach((i, j) => {
      const [stampErr, stamp] = res[2 * j];
      const [err, members] = res[2 * j + 1];
      if (stampErr || err) throw stampErr ?? err;
      out[i] = (members as Buffer[]).map(unpack);
      if (typeof stamp === 'string') this.remember(names[i], stamp, out[i]);
    });
    return out;
  }

  async newestEventTimes(
    keys: readonly (OnlineKey & { excluding: ReadonlySet<string> })[],
  ): Promise<(number | undefined)[]> {
    if (keys.length === 0) return [];
    // The newest members, enough to get past the excluded ids; a key where even those are
    // all excluded (an id stored twice by an earlier redelivery) is read whole.
    const depth = (k: { excluding: ReadonlySet<string> }) => k.excluding.size + 1;
    const p = this.redis.pipeline();
    for (const k of keys) p.zrangeBuffer(this.key(k), -depth(k), -1);
    const res = (await p.exec()) ?? [];
    const out: (number | undefined)[] = [];
    for (let i = 0; i < keys.length; i++) {
      const [err, v] = res[i];
      if (err) throw err;
      const members = v as Buffer[];
      let newest = newestExcluding(members.map(unpack), keys[i].excluding);
      if (newest === undefined && members.length === depth(keys[i]))
        newest = newestExcluding(
          (await this.redis.zrangeBuffer(this.key(keys[i]), 0, -1)).map(unpack),
          keys[i].excluding,
        );
      out.push(newest);
    }
    return out;
  }

  async append(
    entries: readonly (OnlineKey & { events: FeatureEvent[]; retention: Retention | null })[],
  ): Promise<void> {
    if (!entries.length) return;
    // One transaction: a key's events and its stamp change together, so a cached read can
    // never pair a new stamp with old events (or the reverse).
    const p = this.redis.multi();
    for (const e of entries) {
      const key = this.key(e);
      const args: (number | Buffer)[] = [];
      for (const ev of e.events) args.push(ev.eventTs, pack(ev));
      p.zadd(key, ...args);
      if (e.retention) {
        const bound = `${e.retention.inclusive ? '' : '('}${e.retention.before}`;
        p.zremrangebyscore(key, '-inf', bound);
      }
      p.set(this.stampKey(e), randomUUID());
    }
    for (const [err] of (await p.exec()) ?? []) if (err) throw err;
  }

  private remember(key: string, stamp: string, events: FeatureEvent[]): void {
    this.decoded.delete(key);
    this.decoded.set(key, { stamp, events });
    if (this.decoded.size > this.cachedKeys)
      this.decoded.delete(this.decoded.keys().next().value as string);
  }
}

function pack(e: FeatureEvent): Buffer {
  const packed: PackedEvent = [FORMAT, e.eventId, e.eventTs, e.createdTs, e.values];
  return packr.pack(packed);
}

function newestExcluding(
  events: readonly FeatureEvent[],
  excluding: ReadonlySet<string>,
): number | undefined {
  let newest: number | undefined;
  for (const e of events)
    if (!excluding.has(e.eventId) && (newest === undefined || e.eventTs > newest))
      newest = e.eventTs;
  return newest;
}

function unpack(raw: Buffer): FeatureEvent {
  const [format, eventId, eventTs, createdTs, values] = packr.unpack(raw) as PackedEvent;
  if (format !== FORMAT) throw new Error(`online event in unknown format ${String(format)}`);
  return { eventId, eventTs, createdTs, values };
}
