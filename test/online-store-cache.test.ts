import { type FeatureEvent } from '../src/domain/features/point-in-time';
import { RedisOnlineStore } from '../src/infra/redis/online-store';
import {
  closeRedis,
  createRedisClient,
  PIPELINE_ITEMS,
  type RedisClient,
} from '../src/infra/redis/redis-client';
import { deleteRedisPrefix, isolationName, testRedisTarget } from './support/isolation';
import { event, ids, noTrim } from './support/online-events';

/**
 * The online store keeps decoded events of recently read keys, keyed by a stamp every write
 * replaces in the same script. Two store instances stand for two api processes: what one
 * writes (or trims) the other must read at once, never a cached older window.
 */
const prefix = `${isolationName(__filename)}:`;
let redis: RedisClient;

const key = { versionId: 'v1', entityKey: 'ORD' };
/** A 1 s window, trimmed on every update: the retention the tests below reason about. */
const window1s = { windowMs: 1_000, trimStepMs: 0 };

beforeAll(() => {
  redis = createRedisClient(testRedisTarget(), 'online-store-cache-test');
});

afterAll(async () => {
  await deleteRedisPrefix(testRedisTarget(), prefix);
  await closeRedis(redis);
});

it('serves an unchanged key from its decoded copy and a changed one fresh, across processes', async () => {
  const a = new RedisOnlineStore(redis, prefix);
  const b = new RedisOnlineStore(redis, prefix);
  await b.merge(noTrim, [{ ...key, events: [event('e1', 1_000, 1)] }]);

  const [first] = await a.readMany([key]);
  const [again] = await a.readMany([key]);
  expect(ids(first)).toEqual(['e1']);
  expect(again).toBe(first); // the same decoded array: nothing was read or decoded again

  await b.merge(noTrim, [{ ...key, events: [event('e2', 2_000, 2)] }]);
  const [afterWrite] = await a.readMany([key]);
  expect(ids(afterWrite)).toEqual(['e1', 'e2']);

  // A trim is a write too: newest 2 s, window 1 s, so e1 (at 1 s) can never count again.
  await b.merge(window1s, [{ ...key, events: [event('e3', 5_000, 3)] }]);
  expect(ids((await a.readMany([key]))[0])).toEqual(['e2', 'e3']);
  // An update that changes nothing keeps the stamp: the decoded copy stays valid.
  const [cached] = await a.readMany([key]);
  expect(await b.merge(window1s, [{ ...key, events: [event('e3', 5_000, 3)] }])).toEqual([0]);
  expect((await a.readMany([key]))[0]).toBe(cached);
});

it('reads a key without a stamp (written by anything but merge) fresh every time', async () => {
  const store = new RedisOnlineStore(redis, prefix);
  const raw = { versionId: 'v1', entityKey: 'raw' };
  const probe = new RedisOnlineStore(redis, prefix);
  await probe.merge(noTrim, [{ ...raw, events: [event('r1', 1_000, 1)] }]);
  const k = store.keys(raw);
  await redis.del(k.stamp);
  expect(ids((await store.readMany([raw]))[0])).toEqual(['r1']);
  // The event is rewritten behind the store's back (no stamp): the next read still sees it.
  const packed = await redis.hgetBuffer(k.events, 'r1');
  await redis.del(k.events);
  await redis.hset(k.events, 'r1', packed as Buffer);
  expect(ids((await store.readMany([raw]))[0])).toEqual(['r1']);
  await redis.del(k.events);
  expect((await store.readMany([raw]))[0]).toEqual([]);
});

it('keeps the newest known version of each event, whatever order versions arrive in', async () => {
  const store = new RedisOnlineStore(redis, prefix);
  const k = { versionId: 'v3', entityKey: 'ORD' };
  const version = (createdTs: number, v: number): FeatureEvent => ({
    eventId: 'x',
    eventTs: 1_000,
    createdTs,
    values: [v],
  });
  expect(await store.merge(noTrim, [{ ...k, events: [version(2_000, 2)] }])).toEqual([1]);
  // An older version (a backfill of history) does not replace what is held.
  expect(await store.merge(noTrim, [{ ...k, events: [version(1_500, 1)] }])).toEqual([0]);
  // A newer one does, and may move the event in time.
  await store.merge(noTrim, [{ ...k, events: [{ ...version(3_000, 3), eventTs: 900 }] }]);
  expect((await store.readMany([k]))[0]).toEqual([{ ...version(3_000, 3), eventTs: 900 }]);
  expect(await redis.zrange(store.keys(k).times, 0, -1, 'WITHSCORES')).toEqual(['x', '900']);
});

it('forgets the least recently read keys beyond its bound', async () => {
  const store = new RedisOnlineStore(redis, prefix, 2);
  const keys = ['k1', 'k2', 'k3'].map((entityKey) => ({ versionId: 'v2', entityKey }));
  await store.merge(
    noTrim,
    keys.map((k) => ({ ...k, events: [event(k.entityKey, 1, 1)] })),
  );
  const [k1] = await store.readMany([keys[0]]);
  await store.readMany([keys[1]]);
  await store.readMany([keys[2]]); // k1 is forgotten now
  const [k1Again] = await store.readMany([keys[0]]);
  expect(k1Again).not.toBe(k1);
  expect(ids(k1Again)).toEqual(['k1']);
});

it('merges a large batch a bounded number of entities at a time, every result in order', async () => {
  const store = new RedisOnlineStore(redis, prefix);
  const n = PIPELINE_ITEMS * 2 + 37;
  const keys = Array.from({ length: n }, (_, i) => ({ versionId: 'v4', entityKey: `big${i}` }));
  // What reaches Redis at once: on a cluster, one pipeline per entity, so count those in flight.
  let inFlight = 0;
  let most = 0;
  const real = redis.pipeline.bind(redis);
  const spy = jest.spyOn(redis, 'pipeline').mockImplementation((...args) => {
    const p = real(...args);
    const exec = p.exec.bind(p);
    p.exec = async (...a) => {
      const size = p.length;
      inFlight += size;
      most = Math.max(most, inFlight);
      try {
        return await exec(...a);
      } finally {
        inFlight -= size;
      }
    };
    return p;
  });
  try {
    const changed = await store.merge(
      noTrim,
      keys.map((k, i) => ({ ...k, events: [event(k.entityKey, 1, i % 2 ? 1 : 2)] })),
    );
    expect(changed).toEqual(keys.map(() => 1));
  } finally {
    spy.mockRestore();
  }
  expect(most).toBeGreaterThan(0);
  expect(most).toBeLessThanOrEqual(PIPELINE_ITEMS);
  const read = await store.readMany([keys[0], keys[n - 1]]);
  expect(read.map(ids)).toEqual([['big0'], [`big${n - 1}`]]);
});
