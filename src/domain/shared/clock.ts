/** Time is a port so rules that depend on it (leases, TTLs, windows) are testable. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock moved by hand: tests pin exact times; `demo:loop` replays months in minutes. */
export class ManualClock implements Clock {
  constructor(public ms: number) {}

  now(): Date {
    return new Date(this.ms);
  }

  set(ms: number): void {
    this.ms = ms;
  }
}
