import { Cluster } from 'ioredis';
import { type RedisClient } from '../redis/redis-client';
import { type EventBus, type EventSubscription } from '../../domain/events/event-bus';

/** Events a slow subscriber may fall behind by before the oldest are dropped. */
const MAX_BUFFERED = 1_000;

/**
 * Redis pub/sub, the live transport under the outbox (OutboxEventBus): one publishing
 * connection, one subscribing connection per process, channels reference-counted across
 * local subscribers. At most once: what a subscriber misses while its connection is down,
 * the outbox gives back (`onReconnect`).
 */
export class RedisEventBus implements EventBus {
  private readonly listeners = new Map<string, Set<(payload: unknown) => void>>();
  private readonly subscribing = new Map<string, Promise<unknown>>();
  private readonly reconnected: (() => void)[] = [];
  private connectedOnce = false;
  /**
   * On a Redis Cluster, sharded pub/sub (SPUBLISH/SSUBSCRIBE): a channel lives on the node of
   * its slot, so one topic's events reach every subscriber in the order they were published.
   * A plain PUBLISH goes to any node and crosses the cluster bus by different routes: two in a
   * row can arrive swapped, and the outbox subscriber drops the late one (docs/adr/0029).
   */
  private readonly sharded: boolean;
  private subscribeChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    private readonly prefix: string,
    private readonly onDropped: (topic: string) => void = () => undefined,
  ) {
    this.sharded = sub instanceof Cluster;
    // ioredis resubscribes the channels itself; what was published meanwhile is lost here.
    this.sub.on('ready', () => {
      if (this.connectedOnce) this.reconnected.forEach((f) => f());
      this.connectedOnce = true;
    });
    if (this.sub.status === 'ready') this.connectedOnce = true;
    this.sub.on(this.sharded ? 'smessage' : 'message', (channel: string, message: string) => {
      const set = this.listeners.get(channel);
      if (!set) return;
      let payload: unknown;
      try {
        payload = JSON.parse(message);
      } catch {
        return;
      }
      for (const l of set) l(payload);
    });
  }

  onReconnect(listener: () => void): void {
    this.reconnected.push(listener);
  }

  async publish<T>(topic: string, payload: T): Promise<void> {
    const channel = this.channel(topic);
    const message = JSON.stringify(payload);
    await (this.sharded ? this.pub.spublish(channel, message) : this.pub.publish(channel, message));
  }

  subscribe<T>(topic: string): EventSubscription<T> {
    const channel = this.channel(topic);
    const queue: T[] = [];
    let waiting: ((r: IteratorResult<T>) => void) | null = null;
    let closed = false;

    const listener = (payload: unknown) => {
      if (closed) return;
      if (waiting) {
        const w = waiting;
        waiting = null;
        w({ value: payload as T, done: false });
        return;
      }
      if (queue.length >= MAX_BUFFERED) {
        queue.shift();
        this.onDropped(topic);
      }
      queue.push(payload as T);
    };

    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(listener);
    let ready = this.subscribing.get(channel);
    if (!ready) {
      // One SUBSCRIBE at a time: on a Redis Cluster, ioredis writes a SUBSCRIBE sent while its
      // subscriber connection is between connect and ready at once, and the ready check that
      // follows is then refused and thrown (docs/adr/0029). Each waits for the one before.
      ready = this.subscribeChain = this.subscribeChain
        .catch(() => undefined)
        .then(() => (this.sharded ? this.sub.ssubscribe(channel) : this.sub.subscribe(channel)));
      this.subscribing.set(channel, ready);
      ready.catch(() => this.subscribing.delete(channel));
    }

    const close = async () => {
      if (closed) return;
      closed = true;
      const s = this.listeners.get(channel);
      s?.delete(listener);
      if (s && s.size === 0) {
        this.listeners.delete(channel);
        this.subscribing.delete(channel);
        if (this.sub.status === 'ready')
          await (
            this.sharded ? this.sub.sunsubscribe(channel) : this.sub.unsubscribe(channel)
          ).catch(() => undefined);
      }
      if (waiting) waiting({ value: undefined, done: true });
      waiting = null;
    };

    const iterator: EventSubscription<T> = {
      ready: ready.then(() => undefined),
      next: () => {
        if (queue.length > 0) return Promise.resolve({ value: queue.shift() as T, done: false });
        if (closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          waiting = resolve;
        });
      },
      return: async () => {
        await close();
        return { value: undefined, done: true };
      },
      throw: async (err?: unknown) => {
        await close();
        throw err;
      },
      close,
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  private channel(topic: string): string {
    return `${this.prefix}events:${topic}`;
  }
}
