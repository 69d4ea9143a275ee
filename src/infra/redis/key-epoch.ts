import { randomBytes } from 'node:crypto';
import { type RedisClient } from './redis-client';
import { holds, type RedisKeyTracker, type Trust } from './key-tracker';
import { type KeyEpoch } from '../../domain/auth/api-key.repository';
import { holdAnswerUntil } from '../db/request-scope';

/**
 * How long a process may use an epoch it read through a tracker without asking again, counted
 * from the moment the read was sent. Every process must agree on it: `bump` waits it out.
 */
export const EPOCH_TRUST_MS = 500;
/** What `bump` waits beyond EPOCH_TRUST_MS: timer lateness and clock rates between hosts. */
const BUMP_MARGIN_MS = 25;
/** A read through the tracker out longer than this is not waited for (the reader may hang). */
const JOIN_MS = 20;

interface Refresh {
  sent: number;
  /** What it returned, and how long that may be used (null: a change was heard meanwhile). */
  read: Promise<{ value: string; trust: Trust | null }>;
}

/**
 * The key epoch in Redis: one string every api process reads before it trusts a cached
 * verdict on an API key. A Redis that lost the value (restarted empty) is given a fresh
 * random one, which matches no cached verdict. Any connection error or reconnection is a
 * disruption: what was cached while the epoch could not be watched is dropped.
 *
 * With a tracker (ADR 0036, decision 3), an epoch read through it is used without a round trip
 * until Redis reports a change to it, for at most EPOCH_TRUST_MS from when it was asked for,
 * and asked for again in the background once half of that has passed. `bump(true)` resolves
 * only after EPOCH_TRUST_MS more: by then no process can still use the epoch it replaced, whether
 * or not Redis's message reached it, so a change is still honoured everywhere from the moment
 * the changing call returns (ADR 0017). Inside a request (`inRequest`), the wait is the
 * request's: its answer is held until then, so a document revoking many keys waits once.
 */
export class RedisKeyEpoch implements KeyEpoch {
  private readonly key: string;
  private readonly listeners: (() => void)[] = [];
  /** The epoch read through the tracker, and how long it may be used. */
  private held: { value: string; trust: Trust } | null = null;
  private refreshing: Refresh | null = null;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly tracker: RedisKeyTracker | null = null,
  ) {
    this.key = `${prefix}auth:epoch`;
    const disrupted = () => this.listeners.forEach((l) => l());
    redis.on('error', disrupted);
    redis.on('ready', disrupted);
    tracker?.onInvalidate((keys) => {
      if (keys === null || keys.includes(this.key)) this.held = null;
    });
  }

  read(): Promise<string> {
    const held = this.held;
    if (held && this.tracker?.tracking && holds(held.trust)) {
      if (held.trust.until - performance.now() < EPOCH_TRUST_MS / 2)
        void this.refresh().read.catch(() => undefined);
      return Promise.resolve(held.value);
    }
    return this.tracker?.tracking ? this.readTracked() : this.fetch(this.redis);
  }

  async bump(waitOut: boolean): Promise<void> {
    try {
      await this.redis.set(this.key, fresh());
    } finally {
      this.tracker?.changedHere([this.key]);
      // Also when the write failed: it may have landed with its reply lost. Within a request,
      // its answer waits instead (once for all the changes it makes).
      const until = performance.now() + EPOCH_TRUST_MS + BUMP_MARGIN_MS;
      if (waitOut && !holdAnswerUntil(until))
        await new Promise((r) => setTimeout(r, until - performance.now()));
    }
  }

  onDisruption(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Joins the read in flight if it was sent a moment ago, and uses its answer if no change was
   * heard while it was out and it is still recent enough (it may have been sent before a
   * change whose `bump` has returned since); otherwise reads on the main connection.
   */
  private async readTracked(): Promise<string> {
    const inFlight = this.refreshing;
    if (inFlight && performance.now() - inFlight.sent > JOIN_MS) return this.fetch(this.redis);
    const { value, trust } = await this.refresh().read;
    return holds(trust) ? value : this.fetch(this.redis);
  }

  /** One read through the tracker at a time; what it returns is held if no change was heard. */
  private refresh(): Refresh {
    const tracker = this.tracker as RedisKeyTracker;
    if (this.refreshing) return this.refreshing;
    const sent = performance.now();
    const read = (async () => {
      const watch = tracker.watch([this.key], EPOCH_TRUST_MS);
      let value: string;
      try {
        value = await this.fetch(tracker.reader);
      } catch (e) {
        watch.release();
        throw e;
      }
      const [trust] = watch.settle();
      if (trust) this.held = { value, trust };
      return { value, trust };
    })().finally(() => (this.refreshing = null));
    this.refreshing = { sent, read };
    return this.refreshing;
  }

  private async fetch(via: RedisClient): Promise<string> {
    const v = await via.get(this.key);
    if (v !== null) return v;
    await this.redis.set(this.key, fresh(), 'NX');
    return (await via.get(this.key)) ?? '';
  }
}

function fresh(): string {
  return randomBytes(12).toString('base64url');
}
