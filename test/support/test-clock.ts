import { type Clock } from '../../src/domain/shared/clock';

/** A clock tests move by hand, so "ingested at" and "read at" times are exact. */
export class TestClock implements Clock {
  constructor(public ms: number) {}

  now(): Date {
    return new Date(this.ms);
  }

  set(ms: number): void {
    this.ms = ms;
  }
}
