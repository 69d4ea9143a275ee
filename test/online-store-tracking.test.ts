import { type FeatureEvent } from '../src/domain/features/point-in-time';
import { holds, RedisKeyTracker } from '../src/infra/redis/key-tracker';
import { RedisOnlineStore, TRUST_MS } from '../src/infra/redis/online-store';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import { deleteRedisPrefix, isolationName, testRedisUrl } from './support/isolation';
import { event, ids, noTrim } from './support/online-events';

/**
 * Client-side caching of online stamps (ADR 0015): a store with a tracker reads an unchanged
 * key with no round trip at all, and hears of every change from Redis itself. Two stores
 * stand for two api processes; one Redis server (a cluster does not track).
 */
const prefix = `${isolationName(__filename)}:`;
let redis: RedisClient;
let tracker: RedisKeyTracker;

/** Delivers an invalidation message to the tracker as Redis would (null: a flush). */
const invalidate = (keys: string[] | null) =>
  (tracker as unknown as { listener: { emit: (...a: unknown[]) => void } }).listener.emit(
    'messageBuffer',
    Buffer.from('__redis__:invalidate'),
    keys && keys.map((k) => Buffer.from(k)),
  );

beforeAll(async () => {
  redis = createRedisClient(testRedisUrl(), 'online-tracking-test');
  tracker = new RedisKeyTracker(testRedisUrl(), 'online-tracking-test');
  expect(await tracker.ready()).toBe(true);
});

afterAll(async () => {
  await tracker.close();
  await deleteRedisPrefix(testRedisUrl(), prefix);
  await closeRedis(redis);
});

/** A reader (tracked) and a writer over `key`, the key written once and its stamp trusted. */
async function trusted(key: { versionId: string; entityKey: string }) {
  const reader = new RedisOnlineStore(redis, prefix, 100, tracker);
  const writer = new RedisOnlineStore(redis, prefix);
  await writer.merge(noTrim, [{ ...key, events: [event('a', 1, 1)] }]);
  // A miss reads the events on the main connection; the next read's MGET, tracked, confirms
  // the stamp.
  await reader.readMany([key]);
  await reader.readMany([key]);
  return { reader, writer };
}

/** Reads until `ok` holds, for at most `ms`; the reads it took. */
async function readUntil(
  store: RedisOnlineStore,
  key: { versionId: string; entityKey: string },
  ok: (events: FeatureEvent[]) => boolean,
  ms = 1_000,
): Promise<number> {
  const until = Date.now() + ms;
  for (let n = 1; ; n++) {
    if (ok((await store.readMany([key]))[0])) return n;
    if (Date.now() > until) throw new Error(`not seen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

it('reads an unchanged key without a round trip, and a changed one fresh', async () => {
  const key = { versionId: 'v1', entityKey: 'ORD' };
  const reader = new RedisOnlineStore(redis, prefix, 100, tracker);
  const writer = new RedisOnlineStore(redis, prefix);
  await writer.merge(noTrim, [{ ...key, events: [event('e1', 1_000, 1)] }]);
  const mget = jest.spyOn(tracker.reader, 'mget');
  try {
    // A miss reads the events on the main connection; the next read's MGET, tracked, confirms
    // the stamp; from then on nothing is asked.
    const [first] = await reader.readMany([key]);
    await reader.readMany([key]);
    const asked = mget.mock.calls.length;
    expect(asked).toBeGreaterThan(0);
    for (let i = 0; i < 50; i++) expect((await reader.readMany([key]))[0]).toBe(first);
    expect(mget.mock.calls.length).toBe(asked);

    // Another process writes: Redis tells the tracker, and the next reads see the change.
    await writer.merge(noTrim, [{ ...key, events: [event('e2', 2_000, 2)] }]);
    await readUntil(reader, key, (e) => ids(e).includes('e2'), 200);
    expect(mget.mock.calls.length).toBeGreaterThan(asked);
    // A write that changes nothing keeps the stamp: trusted again without a miss.
    const [now] = await reader.readMany([key]);
    expect(await writer.merge(noTrim, [{ ...key, events: [event('e2', 2_000, 2)] }])).toEqual([0]);
    expect((await reader.readMany([key]))[0]).toBe(now);
  } finally {
    mget.mockRestore();
  }
});

it('sees every change a writer makes, read after read, while writes and reads interleave', async () => {
  const key = { versionId: 'v2', entityKey: 'busy' };
  const reader = new RedisOnlineStore(redis, prefix, 100, tracker);
  const writer = new RedisOnlineStore(redis, prefix);
  for (let n = 0; n < 100; n++) {
    await writer.merge(noTrim, [{ ...key, events: [event(`e${n}`, 1_000 + n, n)] }]);
    // Each write is seen within the time its invalidation takes to arrive, never missed.
    await readUntil(reader, key, (e) => e.length === n + 1, 200);
  }
  // Reads racing writes (no waiting between): the last write is still seen.
  const reads = Array.from({ length: 20 }, () => reader.readMany([key]));
  await writer.merge(noTrim, [{ ...key, events: [event('last', 5_000, 0)] }]);
  await Promise.all(reads);
  await readUntil(reader, key, (e) => ids(e).includes('last'), 200);
});

it('trusts nothing read while a change to it was heard, or across a lost connection', async () => {
  const key = { versionId: 'v3', entityKey: 'k' };
  const { reader, writer } = await trusted(key);
  const stamp = reader.keys(key).stamp;
  // A change heard between a read's request and its reply leaves its value untrusted.
  const w = tracker.watch([stamp], TRUST_MS);
  invalidate([stamp]);
  expect(w.settle()).toEqual([null]);
  const [trust] = tracker.watch([stamp], TRUST_MS).settle();
  expect(holds(trust)).toBe(true);

  // A flush (a null payload) makes every key changed, and tracking goes on.
  await reader.readMany([key]);
  await reader.readMany([key]);
  const asked = jest.spyOn(tracker.reader, 'mget');
  try {
    invalidate(null);
    expect(tracker.tracking).toBe(true);
    await reader.readMany([key]);
    expect(asked).toHaveBeenCalledTimes(1);
    await reader.readMany([key]);
    expect(asked).toHaveBeenCalledTimes(1);
  } finally {
    asked.mockRestore();
  }

  // The invalidation connection is cut: everything trusted is withdrawn until tracking is
  // set up again, and reads ask Redis meanwhile.
  await reader.readMany([key]);
  await reader.readMany([key]);
  const mget = jest.spyOn(tracker.reader, 'mget');
  try {
    await reader.readMany([key]);
    expect(mget).not.toHaveBeenCalled();
    const clients = (await redis.client('LIST')) as string;
    const id = /id=(\d+) .*name=online-tracking-test-listener/.exec(clients)?.[1];
    await redis.client('KILL', 'ID', id as string);
    await readUntil(reader, key, () => mget.mock.calls.length > 0, 1_000);
    // Back: written while it was away, and seen.
    await writer.merge(noTrim, [{ ...key, events: [event('b', 2, 2)] }]);
    expect(await tracker.ready()).toBe(true);
    await readUntil(reader, key, (e) => ids(e).includes('b'), 500);
  } finally {
    mget.mockRestore();
  }
});

it('asks again once a stamp has been trusted for TRUST_MS', async () => {
  const key = { versionId: 'v4', entityKey: 'k' };
  const { reader } = await trusted(key);
  const mget = jest.spyOn(tracker.reader, 'mget');
  try {
    await reader.readMany([key]);
    expect(mget).not.toHaveBeenCalled();
    await new Promise((r) => setTimeout(r, TRUST_MS + 50));
    await reader.readMany([key]);
    expect(mget).toHaveBeenCalledTimes(1);
  } finally {
    mget.mockRestore();
  }
});

it('reads its own writes at once, before Redis says the key changed', async () => {
  const key = { versionId: 'v5', entityKey: 'own' };
  const store = new RedisOnlineStore(redis, prefix, 100, tracker);
  await store.merge(noTrim, [{ ...key, events: [event('a', 1, 1)] }]);
  await store.readMany([key]);
  await store.readMany([key]);
  for (let n = 0; n < 50; n++) {
    await store.merge(noTrim, [{ ...key, events: [event(`w${n}`, 10 + n, n)] }]);
    expect(ids((await store.readMany([key]))[0])).toContain(`w${n}`);
  }
});
