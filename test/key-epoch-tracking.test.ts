import { inRequest } from '../src/infra/db/request-scope';
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

/** A tracker that is live but hears nothing (a message lost, a half-open listener socket). */
async function deafTracker(): Promise<RedisKeyTracker> {
  const t = await newTracker();
  (t as unknown as { listener: NodeJS.EventEmitter }).listener.removeAllListeners('messageBuffer');
  return t;
}

/** The next GET through `tracker` is answered by Redis at once but reaches the process late. */
function slowNextGet(tracker: RedisKeyTracker, ms: number): void {
  const get = tracker.reader.get.bind(tracker.reader);
  jest.spyOn(tracker.reader, 'get').mockImplementationOnce(async (key) => {
    const v = await get(key);
    await sleep(ms);
    return v;
  });
}

afterEach(() => jest.restoreAllMocks());

/** A process reading through `tracker` and one without, over one epoch; its value now. */
async function pair(name: string, tracker: RedisKeyTracker) {
  const reader = new RedisKeyEpoch(redis, `${prefix}${name}:`, tracker);
  const writer = new RedisKeyEpoch(redis, `${prefix}${name}:`);
  return { reader, writer, before: await writer.read() };
}

/**
 * The reader starts a read that Redis answers at once but that reaches it `ms` later, and the
 * writer then changes the epoch, waiting it out. Resolves to the slow read.
 */
async function slowReadAcrossBump(
  p: { reader: RedisKeyEpoch; writer: RedisKeyEpoch },
  tracker: RedisKeyTracker,
  ms: number,
): Promise<Promise<string>> {
  slowNextGet(tracker, ms);
  const slow = p.reader.read();
  await sleep(10);
  await p.writer.bump(true);
  return slow;
}

it('reads an unchanged epoch without a round trip, refreshing it in the background', async () => {
  const tracker = await newTracker();
  // Set by a process without a tracker: no change is reported while this one reads.
  const first = await new RedisKeyEpoch(redis, `${prefix}a:`).read();
  const epoch = new RedisKeyEpoch(redis, `${prefix}a:`, tracker);
  expect(await epoch.read()).toBe(first);
  const get = jest.spyOn(tracker.reader, 'get');
  for (let i = 0; i < 100; i++) expect(await epoch.read()).toBe(first);
  expect(get).not.toHaveBeenCalled();
  // Past half its trust, a read is answered at once and the epoch asked for again.
  await sleep(EPOCH_TRUST_MS / 2 + 20);
  expect(await epoch.read()).toBe(first);
  expect(get).toHaveBeenCalledTimes(1);
});

it("hears another process's change at once, long before its trust would run out", async () => {
  const { reader, writer, before } = await pair('b', await newTracker());
  await reader.read();
  await reader.read();
  await writer.bump(false);
  const t0 = performance.now();
  while ((await reader.read()) === before) {
    expect(performance.now() - t0).toBeLessThan(50);
    await sleep(1);
  }
});

it("waits out the trust, so a process that missed Redis's message refuses the old epoch once bump returns", async () => {
  const reader = new RedisKeyEpoch(redis, `${prefix}c:`, await deafTracker());
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

it('counts the trust from when a read was sent, not from when its answer arrived', async () => {
  const tracker = await deafTracker();
  const p = await pair('d', tracker);
  const slow = await slowReadAcrossBump(p, tracker, 300);
  const { reader, before } = p;
  // The slow read arrived (holding the old epoch, no change heard) while bump waited.
  expect(await slow).toBe(before);
  expect(await reader.read()).not.toBe(before);
});

it('does not wait for, nor use, a read sent before a change that has been waited out since', async () => {
  const tracker = await deafTracker();
  const p = await pair('e', tracker);
  const slow = await slowReadAcrossBump(p, tracker, EPOCH_TRUST_MS + 300);
  const { reader, before } = p;
  const t0 = performance.now();
  expect(await reader.read()).not.toBe(before);
  expect(performance.now() - t0).toBeLessThan(200);
  // The slow read's own caller started before the change returned: either value is allowed.
  await slow;
});

it('does not hand a joining caller what a read returned after a change was heard', async () => {
  const tracker = await newTracker();
  const { reader, writer, before } = await pair('f', tracker);
  slowNextGet(tracker, 200);
  const slow = reader.read();
  await writer.bump(false);
  // Joins the slow read (sent a moment ago), which Redis answered before the change.
  const joined = reader.read();
  expect(await joined).not.toBe(before);
  await slow;
});

it('waits out the trust even when the write of the new epoch failed (it may have landed)', async () => {
  const writer = new RedisKeyEpoch(redis, `${prefix}g:`);
  await writer.read();
  const set = redis.set.bind(redis) as (...a: unknown[]) => Promise<unknown>;
  jest.spyOn(redis, 'set').mockImplementationOnce((async (...a: unknown[]) => {
    await set(...a);
    throw new Error('the reply was lost');
  }) as never);
  const t0 = performance.now();
  await expect(writer.bump(true)).rejects.toThrow('the reply was lost');
  expect(performance.now() - t0).toBeGreaterThanOrEqual(EPOCH_TRUST_MS);
});

it("holds a request's answer instead, once for all the changes it makes", async () => {
  const p = await pair('held', await deafTracker());
  await p.reader.read();
  const started = performance.now();
  let inside = 0;
  await inRequest(async () => {
    for (let i = 0; i < 3; i++) await p.writer.bump(true);
    inside = performance.now() - started;
  }, true);
  const answered = performance.now() - started;
  expect(inside).toBeLessThan(EPOCH_TRUST_MS / 2);
  expect(answered).toBeGreaterThanOrEqual(EPOCH_TRUST_MS);
  expect(answered).toBeLessThan(2 * EPOCH_TRUST_MS);
  // Once answered, the process that heard nothing no longer uses the replaced epoch.
  expect(await p.reader.read()).toBe(await p.writer.read());

  // A scope whose handler writes its own response cannot hold it: each change waits in place.
  const again = performance.now();
  await inRequest(async () => {
    await p.writer.bump(true);
    inside = performance.now() - again;
  });
  expect(inside).toBeGreaterThanOrEqual(EPOCH_TRUST_MS);
});

it('reads Redis every time without a tracker, or while its tracker is down', async () => {
  const epoch = new RedisKeyEpoch(redis, `${prefix}h:`);
  await epoch.read();
  const get = jest.spyOn(redis, 'get');
  await epoch.read();
  await epoch.read();
  expect(get).toHaveBeenCalledTimes(2);

  const tracker = await newTracker();
  const tracked = new RedisKeyEpoch(redis, `${prefix}h:`, tracker);
  await tracked.read();
  await tracked.read();
  get.mockClear();
  await tracker.close();
  await tracked.read();
  await tracked.read();
  expect(get).toHaveBeenCalledTimes(2);
});
