import Redis from 'ioredis';

const CHANNEL = '__redis__:invalidate';
/** Between two attempts to set tracking up while both connections are up. */
const RETRY_MS = 500;

/**
 * Until when what a read returned may be used without asking again, counted from when the
 * read was sent: on the monotonic clock, and on the wall clock too, which keeps running while
 * a host is suspended (the monotonic clock stops then).
 */
export interface Trust {
  until: number;
  wallFrom: number;
  wallUntil: number;
}

/** Whether `trust` still holds now. */
export function holds(trust: Trust | null): boolean {
  if (!trust || performance.now() >= trust.until) return false;
  const wall = Date.now();
  return wall < trust.wallUntil && wall >= trust.wallFrom;
}

/** A read under watch: settle it once its reply is in, or release it if it failed. */
export interface Watch {
  /**
   * Per key, how long what the read returned may be used without asking again; null when a
   * change to it may have been missed while the read was out.
   */
  settle(): (Trust | null)[];
  /** The read failed: forget it. */
  release(): void;
}

/**
 * Redis client-side caching (CLIENT TRACKING, RESP2 redirect mode) for one process: keys read
 * through `reader` are remembered by the server, which publishes their names on
 * `__redis__:invalidate` to this tracker's `listener` connection as soon as any client changes
 * them. A caller may then keep what it read and skip the round trip until it hears of a
 * change (ADR 0036). Trust is given only while both connections are up and tracking is set
 * on the reader's current connection; any error, reconnection or close withdraws all of it
 * (`onInvalidate(null)`), and setting tracking up is retried while both are up. One Redis
 * server only: a cluster would need a tracker per node, so cluster clients do not track.
 */
export class RedisKeyTracker {
  /** Reads whose keys are tracked. Its commands time out like the data client's. */
  readonly reader: Redis;
  private readonly listener: Redis;
  private live = false;
  private setting: Promise<void> | null = null;
  /** Asked for again while a set-up was running: run once more when it ends. */
  private again = false;
  private retry: NodeJS.Timeout | null = null;
  /** Bumped whenever every key is to be considered changed: a read spanning one trusts nothing. */
  private era = 0;
  /** Keys of reads in flight, and whether a change to each was heard meanwhile. */
  private readonly inFlight = new Map<string, { reads: number; changed: boolean }>();
  private readonly listeners: ((keys: string[] | null) => void)[] = [];
  private closed = false;

  constructor(url: string, name: string, commandTimeoutMs?: number) {
    const options = {
      commandTimeout: commandTimeoutMs,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
      // Subscribed again by `setUp`, after the listener's new client id is known.
      autoResubscribe: false,
      // A command of a set-up interrupted by a reconnection is not replayed on the new one.
      autoResendUnfulfilledCommands: false,
    };
    this.reader = new Redis(url, { ...options, connectionName: `${name}-reader` });
    this.listener = new Redis(url, { ...options, connectionName: `${name}-listener` });
    this.listener.on('messageBuffer', (channel: Buffer, keys: unknown) => {
      if (channel.toString() !== CHANNEL) return;
      // A null payload is a flush (FLUSHALL, FLUSHDB): every key changed; tracking goes on.
      if (!Array.isArray(keys)) return this.changedAll();
      const names = keys.map((k: Buffer) => k.toString());
      for (const k of names) {
        const f = this.inFlight.get(k);
        if (f) f.changed = true;
      }
      this.listeners.forEach((l) => l(names));
    });
    for (const c of [this.reader, this.listener]) {
      c.on('error', () => this.down());
      c.on('close', () => this.down());
      c.on('ready', () => void this.setUp());
    }
  }

  /** Told the names of changed keys, or null when every key must be considered changed. */
  onInvalidate(listener: (keys: string[] | null) => void): void {
    this.listeners.push(listener);
  }

  /** Whether reads through `reader` are being tracked now. */
  get tracking(): boolean {
    return this.live;
  }

  /**
   * This process changed `keys` itself: trust in them ends now, not when Redis's message
   * arrives (which may come after the writer's next read: read-your-writes in one process).
   */
  changedHere(keys: readonly string[]): void {
    for (const k of keys) {
      const f = this.inFlight.get(k);
      if (f) f.changed = true;
    }
    this.listeners.forEach((l) => l([...keys]));
  }

  /**
   * Marks a read of `keys` through `reader` as begun, to be trusted for at most `trustMs` from
   * now; settle or release it exactly once.
   */
  watch(keys: readonly string[], trustMs: number): Watch {
    const sent = performance.now();
    const wallSent = Date.now();
    const era = this.era;
    const wasLive = this.live;
    for (const k of keys) {
      const f = this.inFlight.get(k);
      if (f) f.reads++;
      else this.inFlight.set(k, { reads: 1, changed: false });
    }
    const end = (k: string) => {
      const f = this.inFlight.get(k) as { reads: number; changed: boolean };
      if (--f.reads === 0) this.inFlight.delete(k);
      return f.changed;
    };
    return {
      settle: () => {
        const ok = wasLive && this.live && era === this.era;
        const trust = { until: sent + trustMs, wallFrom: wallSent, wallUntil: wallSent + trustMs };
        return keys.map((k) => (!end(k) && ok ? trust : null));
      },
      release: () => keys.forEach(end),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.down();
    this.reader.disconnect();
    this.listener.disconnect();
  }

  /** Every key is to be considered changed (a flush, or tracking lost). */
  private changedAll(): void {
    this.era++;
    for (const f of this.inFlight.values()) f.changed = true;
    this.listeners.forEach((l) => l(null));
  }

  /** Tracking is lost until set up again. */
  private down(): void {
    this.live = false;
    this.changedAll();
  }

  /** Subscribes the listener and points the reader's tracking at it, once both are up. */
  private setUp(): Promise<void> {
    if (this.setting) {
      this.again = true;
      return this.setting;
    }
    if (this.closed || this.reader.status !== 'ready' || this.listener.status !== 'ready')
      return Promise.resolve();
    this.again = false;
    this.setting = this.establish().finally(() => {
      this.setting = null;
      if (this.again) void this.setUp();
      // Failed with both connections up (a command timed out): try again a little later.
      else if (!this.live && !this.closed && !this.retry)
        this.retry = setTimeout(() => {
          this.retry = null;
          void this.setUp();
        }, RETRY_MS).unref();
    });
    return this.setting;
  }

  private async establish(): Promise<void> {
    try {
      this.down();
      const era = this.era;
      // A listener that was subscribed (only the reader reconnected) starts over: its id is
      // asked for outside subscribed mode.
      await this.listener.unsubscribe(CHANNEL);
      const id = (await this.listener.client('ID')) as number;
      await this.listener.subscribe(CHANNEL);
      await this.reader.client('TRACKING', 'OFF');
      await this.reader.client('TRACKING', 'ON', 'REDIRECT', String(id));
      // Live only if nothing went wrong meanwhile.
      if (era === this.era && this.reader.status === 'ready' && this.listener.status === 'ready')
        this.live = true;
    } catch {
      this.down();
    }
  }

  /** Resolves once tracking is set up (for tests and start-up), or after `timeoutMs`. */
  async ready(timeoutMs = 2_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (!this.live && Date.now() < until) {
      await this.setUp();
      if (!this.live) await new Promise((r) => setTimeout(r, 20));
    }
    return this.live;
  }
}
