import type Redis from 'ioredis';
import { type OnlineState, type OnlineStore } from '../../domain/features/feature-store.ports';
import { type FeatureValue } from '../../domain/features/feature-definition';

type PackedEvent = [
  eventId: string,
  eventTs: number,
  createdTs: number,
  fields: Record<string, FeatureValue>,
];

/**
 * One key per (view version, entity) holding every feature of the entity for that version,
 * packed as JSON: a read is one GET, and reads of many entities or versions are one
 * pipelined round trip. Keys are per entity, so they shard across a Redis Cluster.
 */
export class RedisOnlineStore implements OnlineStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(versionId: string, entityKey: string): string {
    return `${this.prefix}ol:${versionId}:${entityKey}`;
  }

  async readMany(
    keys: readonly { versionId: string; entityKey: string }[],
  ): Promise<(OnlineState | null)[]> {
    if (keys.length === 0) return [];
    if (keys.length === 1)
      return [unpack(await this.redis.get(this.key(keys[0].versionId, keys[0].entityKey)))];
    const p = this.redis.pipeline();
    for (const k of keys) p.get(this.key(k.versionId, k.entityKey));
    const res = (await p.exec()) ?? [];
    return res.map(([err, v]) => {
      if (err) throw err;
      return unpack(v as string | null);
    });
  }

  async writeMany(
    entries: readonly { versionId: string; entityKey: string; state: OnlineState }[],
  ): Promise<void> {
    if (!entries.length) return;
    const p = this.redis.pipeline();
    for (const e of entries) p.set(this.key(e.versionId, e.entityKey), pack(e.state));
    const res = (await p.exec()) ?? [];
    for (const [err] of res) if (err) throw err;
  }
}

export function pack(s: OnlineState): string {
  return JSON.stringify(
    s.events.map((e): PackedEvent => [e.eventId, e.eventTs, e.createdTs, e.fields]),
  );
}

export function unpack(raw: string | null): OnlineState | null {
  if (raw === null) return null;
  const events = (JSON.parse(raw) as PackedEvent[]).map(
    ([eventId, eventTs, createdTs, fields]) => ({ eventId, eventTs, createdTs, fields }),
  );
  return { events };
}
