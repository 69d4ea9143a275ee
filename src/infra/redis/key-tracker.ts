import Redis from 'ioredis';

const CHANNEL = '__redis__:invalidate';

/** What a read under watch learned: per key, whether its value may be trusted until changed. */
export interface Watch {
  /** Call once the read's reply is in: per key, true when no change to it can have been missed. */
  settle(): boolean[];
}

/**
 * Redis client-side caching (CLIENT TRACKING, RESP2 redirect mode) for one process: keys read
 * through `reader` are remembered by the server, which publishes their names on
 * `__redis__:invalidate` to this tracker's `listener` connection as soon as any client changes
 * them. A caller may then keep what it read and skip the round trip until it hears of a
 * change (ADR 0015). Trust is given only while both connections are up and tracking is set
 * on the reader's current connection; any error, reconnection or close withdraws all of it
 * (`onInvalidate(null)`), and tracking is set up again once both are back. One Redis server
 * only: a cluster would need a tracker per node, so cluster clients do not track.
 */
export class RedisKeyTracker {
  /** Reads whose keys are tracked. Its commands time out like the data client's. */
  readonly reader: Redis;
  private readonly listener: Redis;
  private live = false;
  private setting: Promise<void> | null = null;
  /** Bumped whenever everything is withdrawn, so a read that spans one trusts nothing. */
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
    };
    this.reader = new Redis(url, { ...options, connectionName: `${name}-reader` });
    this.listener = new Redis(url, { ...options, connectionName: `${name}-listener` });
    this.listener.on('messageBuffer', (channel: Buffer, keys: unknown) => {
      if (channel.toString() !== CHANNEL) return;
      // A null payload is a flush (FLUSHALL, FLUSHDB): every key changed.
      if (!Array.isArray(keys)) return this.withdraw();
      const names = keys.map((k: Buffer) => k.toString());
      for (const k of names) {
        const f = this.inFlight.get(k);
        if (f) f.changed = true;
      }
      this.listeners.forEach((l) => l(names));
    });
    for (const c of [this.reader, this.listener]) {
      c.on('error', () => this.withdraw());
      c.on('close', () => this.withdraw());
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

  /** Marks a read of `keys` through `reader` as begun; settle it when its reply is in. */
  watch(keys: readonly string[]): Watch {
    const era = this.era;
    const wasLive = this.live;
    for (const k of keys) {
      const f = this.inFlight.get(k);
      if (f) f.reads++;
      else this.inFlight.set(k, { reads: 1, changed: false });
    }
    return {
      settle: () => {
        const ok = wasLive && this.live && era === this.era;
        return keys.map((k) => {
          const f = this.inFlight.get(k) as { reads: number; changed: boolean };
          const trusted = ok && !f.changed;
          if (--f.reads === 0) this.inFlight.delete(k);
          return trusted;
        });
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.withdraw();
    this.reader.disconnect();
    this.listener.disconnect();
  }

  private withdraw(): void {
    this.era++;
    this.live = false;
    for (const f of this.inFlight.values()) f.changed = true;
    this.listeners.forEach((l) => l(null));
  }

  /** Subscribes the listener and points the reader's tracking at it, once both are up. */
  private setUp(): Promise<void> {
    if (this.setting) return this.setting;
    if (this.closed || this.reader.status !== 'ready' || this.listener.status !== 'ready')
      return Promise.resolve();
    this.setting = this.establish().finally(() => (this.setting = null));
    return this.setting;
  }

  private async establish(): Promise<void> {
    try {
      this.withdraw();
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
      this.withdraw();
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
