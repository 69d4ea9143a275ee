import { type DataSource } from 'typeorm';
import {
  EVENT_CURSOR,
  type EventBus,
  type EventSubscription,
  type SubscribeOptions,
} from '../../domain/events/event-bus';
import { onCommit } from '../db/ambient-transaction';
import { storableJson } from '../db/storable-text';
import { type RedisEventBus } from './redis-event-bus';

/** What travels on Redis pub/sub: the event's place in the relay's order, and the event. */
export interface Envelope {
  s: number;
  p: unknown;
}

const REPLAY_PAGE = 500;
const WAKE_TOPIC = 'outbox-wake';
/** A subscriber this far behind is closed (it can resume with its cursor). */
const MAX_BUFFERED = 10_000;

/**
 * The event bus of the fleet (docs/adr/0027). `publish` writes the event to the `outbox`
 * table in the caller's transaction: it exists exactly when the change does, and a Redis
 * outage cannot fail the change or lose the event. The relay (one process, under a lease)
 * numbers committed events in the order it publishes them (`seq`) and sends them on Redis
 * pub/sub. A subscription delivers each event at least once and in `seq` order: it drops
 * what it already delivered, reads from the outbox what it missed (from a cursor a client
 * gives, or while its Redis connection was down), and tags every event with its cursor.
 */
export class OutboxEventBus implements EventBus {
  private readonly active = new Set<() => void>();
  private wake: () => void = () => undefined;

  constructor(
    private readonly ds: DataSource,
    private readonly live: RedisEventBus,
  ) {
    live.onReconnect(() => this.active.forEach((catchUp) => catchUp()));
  }

  /**
   * Calls `wake` whenever any process committed events: the relay then runs at once instead
   * of at its next poll. Best effort (pub/sub); the poll is the floor.
   */
  onPublished(wake: () => void): void {
    this.wake = wake;
    const sub = this.live.subscribe<number>(WAKE_TOPIC);
    void (async () => {
      for await (const _ of sub) this.wake();
    })();
  }

  async publish<T>(topic: string, payload: T): Promise<void> {
    await this.ds.query(`INSERT INTO outbox (topic, payload) VALUES ($1, $2::jsonb)`, [
      topic,
      storableJson(payload),
    ]);
    onCommit(() => {
      this.wake();
      void this.live.publish(WAKE_TOPIC, 1).catch(() => undefined);
    });
  }

  subscribe<T>(topic: string, opts: SubscribeOptions = {}): EventSubscription<T> {
    const queue: { seq: number; payload: T }[] = [];
    let waiting: ((r: IteratorResult<T>) => void) | null = null;
    let closed = false;
    /** The highest seq delivered or queued; null until the starting point is known. */
    let last: number | null = null;
    let replaying: Promise<void> = Promise.resolve();
    const early: Envelope[] = [];

    const deliver = (seq: number, payload: T) => {
      if (closed || (last !== null && seq <= last)) return;
      last = seq;
      if (payload && typeof payload === 'object')
        Object.defineProperty(payload, EVENT_CURSOR, { value: String(seq), enumerable: false });
      if (waiting) {
        const w = waiting;
        waiting = null;
        w({ value: payload, done: false });
        return;
      }
      if (queue.length >= MAX_BUFFERED) void close();
      queue.push({ seq, payload });
    };
    const replayFrom = (from: number) =>
      (replaying = replaying
        .then(async () => {
          for (let after = from; !closed;) {
            const rows: { seq: string; payload: T }[] = await this.ds.query(
              `SELECT seq, payload FROM outbox WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT ${REPLAY_PAGE}`,
              [topic, after],
            );
            for (const r of rows) deliver(Number(r.seq), r.payload);
            if (rows.length < REPLAY_PAGE) break;
            after = Number(rows[rows.length - 1].seq);
          }
        })
        .catch(() => undefined));

    const sub = this.live.subscribe<Envelope>(topic);
    void (async () => {
      for await (const e of sub) {
        if (last === null) early.push(e);
        else await replaying.then(() => deliver(e.s, e.p as T));
      }
    })();
    const catchUp = () => {
      if (last !== null) void replayFrom(last);
    };
    this.active.add(catchUp);

    const ready = (async () => {
      await sub.ready;
      if (opts.after !== undefined && opts.after !== null && /^\d+$/.test(opts.after)) {
        last = Number(opts.after);
        await replayFrom(last);
      } else {
        const [row] = (await this.ds.query(
          `SELECT coalesce(max(seq), 0) AS seq FROM outbox WHERE topic = $1`,
          [topic],
        )) as { seq: string }[];
        last = Number(row.seq);
      }
      for (const e of early.splice(0)) deliver(e.s, e.p as T);
    })();

    const close = async () => {
      if (closed) return;
      closed = true;
      this.active.delete(catchUp);
      await sub.close();
      if (waiting) waiting({ value: undefined, done: true });
      waiting = null;
    };
    const iterator: EventSubscription<T> = {
      ready,
      next: () => {
        const first = queue.shift();
        if (first) return Promise.resolve({ value: first.payload, done: false });
        if (closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (waiting = resolve));
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
}
