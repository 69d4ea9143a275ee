/**
 * Cooperative time slicing for long work in the api process (compactions, dataset builds,
 * drift reports): it runs in the same event loop that answers requests, and on PGlite every
 * statement runs there too, so a loop that never awaits stalls every request behind it
 * (docs/adr/0020). The loop asks `due()` cheaply as it goes and, when its slice is used up,
 * awaits `pause()`: pending I/O (requests, their queries) runs before it continues.
 */
export const DEFAULT_SLICE_MS = 8;

/** One turn of the event loop: callbacks of I/O that completed meanwhile run first. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class TimeSlice {
  private until: number;

  constructor(private readonly sliceMs = DEFAULT_SLICE_MS) {
    if (!(sliceMs > 0)) throw new RangeError(`TimeSlice: sliceMs must be > 0 (got ${sliceMs})`);
    this.until = performance.now() + sliceMs;
  }

  /** Whether this slice is used up: the caller should `pause()` at its next safe point. */
  due(): boolean {
    return performance.now() >= this.until;
  }

  /** Yields to the event loop and starts a new slice. */
  async pause(): Promise<void> {
    await yieldToEventLoop();
    this.until = performance.now() + this.sliceMs;
  }

  /** `pause()` if the slice is used up; otherwise nothing (no await, no turn given up). */
  async maybePause(): Promise<void> {
    if (this.due()) await this.pause();
  }
}
