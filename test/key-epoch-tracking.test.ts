import { RedisKeyEpoch, EPOCH_TRUST_MS } from '../src/infra/redis/key-epoch';
import { RedisKeyTracker } from '../src/infra/redis/key-tracker';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import { deleteRedisPrefix, isolationName, testRedisUrl } from './support/isolation';

/**
 * The key epoch read through a tracker (ADR 0036, decision 3): no round trip while Redis has
 * not reported a change, and a change honoured by every process once `bump` has returned, even
 * by one that never hears Redis's message. Instances stand for api processes.
 */
const prefix = `${isolationName(__filename)}:`;
let redis: RedisClient;
const trackers: RedisKeyTracker[] = [];

async function newTracker(): Promise<RedisKeyTracker> {
  const t = new RedisKeyTracker(testRedisUrl(), 'key-epoch-test');
  trackers.push(t);
  expect(await t.ready()).toBe(true);
  return t;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  redis = createRedisClient(testRedisUrl(), 'key-epoch-test');
});

afterAll(async () => {
  await Promise.all(trackers.map((t) => t.close()));
  await deleteRedisPrefix(testRedisUrl(), prefix);
  await closeRedis(redis);
});

it('reads an unchanged epoch without a round trip, refreshing it in the background', async () => {
  const tracker = await newTracker();
  const epoch = new RedisKeyEpoch(redis, `${prefix}a:`, tracker);
  // The first read of a new prefix sets the epoch, which Redis reports as a change.
  await epoch.read();
  const get = jest.spyOn(tracker.reader, 'get');
  const first = await epoch.read();
  const asked = get.mock.calls.length;
  for (let i = 0; i < 100; i++) expect(await epoch.read()).toBe(first);
  expect(get.mock.calls.length).toBe(asked);
  // Past half its trust, a read is answered at once and the epoch asked for again.
  await sleep(EPOCH_TRUST_MS / 2 + 20);
  expect(await epoch.read()).toBe(first);
  expect(get.mock.calls.length).toBe(asked + 1);
  get.mockRestore();
});

it("hears another process's change well before the trust runs out", async () => {
  const reader = new RedisKeyEpoch(redis, `${prefix}b:`, await newTracker());
  const writer = new RedisKeyEpoch(redis, `${prefix}b:`);
  const before = await reader.read();
  await reader.read();
  const bumped = writer.bump(false);
  const t0 = performance.now();
  while ((await reader.read()) === before) {
    expect(performance.now() - t0).toBeLessThan(EPOCH_TRUST_MS / 2);
    await sleep(1);
  }
  await bumped;
});

it("waits out the trust, so a process that missed Redis's message refuses the old epoch once bump returns", async () => {
  // A tracker whose listener hears nothing (a message lost, a half-open socket) but is live.
  const deaf = await newTracker();
  (deaf as unknown as { listener: NodeJS.EventEmitter }).listener.removeAllListeners(
    'messageBuffer',
  );
  const reader = new RedisKeyEpoch(redis, `${prefix}c:`, deaf);
  const writer = new RedisKeyEpoch(redis, `${prefix}c:`);
  for (let round = 0; round < 3; round++) {
    const before = await reader.read();
    expect(await reader.read()).toBe(before);
    const t0 = performance.now();
    await writer.bump(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(EPOCH_TRUST_MS);
    expect(await reader.read()).not.toBe(before);
  }
});

it('does not use a read sent before a change that has been waited out since', async () => {
  const tracker = await newTracker();
  const reader = new RedisKeyEpoch(redis, `${prefix}d:`, tracker);
  const writer = new RedisKeyEpoch(redis, `${prefix}d:`);
  const before = await writer.read();
  // The next read through the tracker is answered by Redis at once but reaches the process late.
  const get = tracker.reader.get.bind(tracker.reader);
  jest.spyOn(tracker.reader, 'get').mockImplementationOnce(async (key) => {
    const v = await get(key);
    await sleep(EPOCH_TRUST_MS + 200);
    return v;
  });
  const slow = reader.read();
  await sleep(10);
  await writer.bump(true);
  // This read joins the slow one, which was sent before the change: it must read again.
  expect(await reader.read()).not.toBe(before);
  // The slow read's own caller started before the change returned: either value is allowed.
  await slow;
  jest.restoreAllMocks();
});

it('a process without a tracker reads Redis every time', async () => {
  const epoch = new RedisKeyEpoch(redis, `${prefix}e:`);
  await epoch.read();
  const get = jest.spyOn(redis, 'get');
  await epoch.read();
  await epoch.read();
  expect(get.mock.calls.length).toBe(2);
  get.mockRestore();
});
