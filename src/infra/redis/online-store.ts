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
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(k: OnlineKey): string {
    return `${this.prefix}ol:${k.versionId}:${k.entityKey}`;
  }

  async readMany(keys: readonly OnlineKey[]): Promise<FeatureEvent[][]> {
    if (keys.length === 0) return [];
    if (keys.length === 1)
      return [(await this.redis.zrangeBuffer(this.key(keys[0]), 0, -1)).map(unpack)];
    const p = this.redis.pipeline();
    for (const k of keys) p.zrangeBuffer(this.key(k), 0, -1);
    return ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return (v as Buffer[]).map(unpack);
    });
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
    const p = this.redis.pipeline();
    for (const e of entries) {
      const key = this.key(e);
      const args: (number | Buffer)[] = [];
      for (const ev of e.events) args.push(ev.eventTs, pack(ev));
      p.zadd(key, ...args);
      if (e.retention) {
        const bound = `${e.retention.inclusive ? '' : '('}${e.retention.before}`;
        p.zremrangebyscore(key, '-inf', bound);
      }
    }
    for (const [err] of (await p.exec()) ?? []) if (err) throw err;
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
