/** Time is a port so rules that depend on it (leases, TTLs, windows) are testable. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
