import type Redis from 'ioredis';
import { type FeatureEvent } from '../src/domain/features/point-in-time';
import { RedisOnlineStore } from '../src/infra/redis/online-store';
import { closeRedis, createRedisClient } from '../src/infra/redis/redis-client';
import { deleteRedisPrefix, isolationName, testRedisUrl } from './support/isolation';

/**
 * The online store keeps decoded events of recently read keys, keyed by a stamp every write
 * replaces in the same transaction. Two store instances stand for two api processes: what
 * one writes (or trims) the other must read at once, never a cached older window.
 */
const prefix = `${isolationName(__filename)}:`;
let redis: Redis;

const key = { versionId: 'v1', entityKey: 'ORD' };
const event = (id: string, eventTs: number, v: number): FeatureEvent => ({
  eventId: id,
  eventTs,
  createdTs: eventTs,
  values: [v],
});
const ids = (events: FeatureEvent[]) => events.map((e) => e.eventId).sort();

beforeAll(() => {
  redis = createRedisClient(testRedisUrl(), 'online-store-cache-test');
});

afterAll(async () => {
  await deleteRedisPrefix(testRedisUrl(), prefix);
  await closeRedis(redis);
});

it('serves an unchanged key from its decoded copy and a changed one fresh, across processes', async () => {
  const a = new RedisOnlineStore(redis, prefix);
  const b = new RedisOnlineStore(redis, prefix);
  await b.append([{ ...key, events: [event('e1', 1_000, 1)], retention: null }]);

  const [first] = await a.readMany([key]);
  const [again] = await a.readMany([key]);
  expect(ids(first)).toEqual(['e1']);
  expect(again).toBe(first); // the same decoded array: nothing was read or decoded again

  await b.append([{ ...key, events: [event('e2', 2_000, 2)], retention: null }]);
  const [afterWrite] = await a.readMany([key]);
  expect(ids(afterWrite)).toEqual(['e1', 'e2']);

  // A trim is a write too.
  await b.append([
    { ...key, events: [event('e3', 3_000, 3)], retention: { before: 2_000, inclusive: true } },
  ]);
  expect(ids((await a.readMany([key]))[0])).toEqual(['e3']);
});

it('reads a key without a stamp (written by anything but append) fresh every time', async () => {
  const store = new RedisOnlineStore(redis, prefix);
  const raw = { versionId: 'v1', entityKey: 'raw' };
  const probe = new RedisOnlineStore(redis, prefix);
  await probe.append([{ ...raw, events: [event('r1', 1_000, 1)], retention: null }]);
  await redis.del(`${prefix}ols:v1:raw`);
  expect(ids((await store.readMany([raw]))[0])).toEqual(['r1']);
  // Another member lands behind the store's back (no stamp): the next read still sees it.
  const members = await redis.zrangeBuffer(store.key(raw), 0, -1);
  await redis.del(store.key(raw));
  await redis.zadd(store.key(raw), 5, members[0]);
  expect(ids((await store.readMany([raw]))[0])).toEqual(['r1']);
  await redis.del(store.key(raw));
  expect((await store.readMany([raw]))[0]).toEqual([]);
});

it('forgets the least recently read keys beyond its bound', async () => {
  const store = new RedisOnlineStore(redis, prefix, 2);
  const keys = ['k1', 'k2', 'k3'].map((entityKey) => ({ versionId: 'v2', entityKey }));
  await store.append(
    keys.map((k) => ({ ...k, events: [event(k.entityKey, 1, 1)], retention: null })),
  );
  const [k1] = await store.readMany([keys[0]]);
  await store.readMany([keys[1]]);
  await store.readMany([keys[2]]); // k1 is forgotten now
  const [k1Again] = await store.readMany([keys[0]]);
  expect(k1Again).not.toBe(k1);
  expect(ids(k1Again)).toEqual(['k1']);
});
