import { TimeSlice, yieldToEventLoop } from './time-slice';

describe('TimeSlice', () => {
  it('is due only once its slice is used up, and pause() starts a new one', async () => {
    const slice = new TimeSlice(20);
    expect(slice.due()).toBe(false);
    const until = performance.now() + 25;
    while (performance.now() < until) {
      // busy: the slice runs out
    }
    expect(slice.due()).toBe(true);
    await slice.pause();
    expect(slice.due()).toBe(false);
  });

  it('yieldToEventLoop() lets callbacks that are due run, where a microtask does not', async () => {
    let fired = false;
    const t = setTimeout(() => (fired = true), 0);
    const start = performance.now();
    while (performance.now() - start < 5) {
      // the 0 ms timer becomes due meanwhile
    }
    await Promise.resolve();
    expect(fired).toBe(false);
    // Two turns: whichever phase this test runs in, the timers phase comes round.
    await yieldToEventLoop();
    await yieldToEventLoop();
    expect(fired).toBe(true);
    clearTimeout(t);
  });

  it('refuses a slice that is not positive', () => {
    expect(() => new TimeSlice(0)).toThrow(RangeError);
    expect(() => new TimeSlice(Number.NaN)).toThrow(RangeError);
  });
});
