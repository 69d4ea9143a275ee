import { MicroBatcher } from './micro-batcher';

describe('MicroBatcher', () => {
  it('gives each caller its own row, in batches no larger than maxBatch', async () => {
    const seen: number[][] = [];
    const b = new MicroBatcher<number, number>(
      async (xs) => {
        seen.push(xs);
        await new Promise((r) => setTimeout(r, 2));
        return xs.map((x) => x * 10);
      },
      { maxBatch: 8, maxWaitUs: 500 },
    );
    const out = await Promise.all(Array.from({ length: 50 }, (_, i) => b.submit(i)));
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => i * 10));
    expect(Math.max(...seen.map((s) => s.length))).toBeLessThanOrEqual(8);
    expect(seen.length).toBeLessThan(50);
    expect(seen.flat().sort((a, c) => a - c)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('sends a lone call after maxWait, and fails every caller of a failing batch', async () => {
    const seen: number[][] = [];
    const b = new MicroBatcher<number, number>(
      async (xs) => {
        seen.push(xs);
        if (xs.includes(13)) throw new Error('bad row');
        return xs;
      },
      { maxBatch: 4, maxWaitUs: 2_000 },
    );
    // Not timed against performance.now(): a libuv timer counts from the loop's cached time,
    // so on a busy machine it can fire before 2 ms have passed by the wall clock.
    expect(await b.submit(1)).toBe(1);
    expect(seen).toEqual([[1]]);
    const results = await Promise.allSettled([b.submit(12), b.submit(13)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('runs one batch per lane at once, never more, and reports the queue each arrival found', async () => {
    let running = 0;
    let most = 0;
    let lanes = 3;
    const b = new MicroBatcher<number, number>(
      async (xs) => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return xs;
      },
      { maxBatch: 2, maxWaitUs: 0 },
      () => lanes,
    );
    await Promise.all(Array.from({ length: 40 }, (_, i) => b.submit(i)));
    expect(most).toBe(3);
    const { meanDepth, arrivals } = b.takeDepth();
    expect(arrivals).toBe(40);
    expect(meanDepth).toBeGreaterThan(5); // 40 arrivals at once queue up behind each other
    expect(b.takeDepth()).toEqual({ meanDepth: 0, arrivals: 0 });

    lanes = 1;
    most = 0;
    await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(most).toBe(1);
  });
});
