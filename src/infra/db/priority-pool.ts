import { type Pool, type PoolClient } from 'pg';
import { inOpenRequest } from './request-scope';

type Release = (err?: Error | boolean) => void;
type ConnectCallback = (err: Error | undefined, client?: PoolClient, release?: Release) => void;

/**
 * Connections handed out requests first. A pool serves its waiters in arrival order, so a
 * request waited behind every statement background work (compaction, dataset builds, drift
 * reports) had queued; on the embedded PGlite, whose pool holds its one connection, that was
 * most of a busy api's latency (docs/adr/0020). In front of the pool stands a gate with as
 * many permits as the pool has connections: when one comes free, a waiting request (an open
 * `inRequest` scope) gets it before any waiting background statement. Background work is
 * never refused, only served after; it cannot starve while requests leave gaps, and a
 * request never waits for more than the statements already running.
 */
export function prioritizeRequests(pool: Pool, connections: number): void {
  const gate = new PriorityGate(connections);
  const connect = pool.connect.bind(pool) as () => Promise<PoolClient>;
  const checkout = async (): Promise<PoolClient> => {
    await gate.acquire(inOpenRequest());
    let client: PoolClient;
    try {
      client = await connect();
    } catch (e) {
      gate.release();
      throw e;
    }
    // pg-pool sets `release` afresh at every checkout: wrap this checkout's.
    const release = client.release.bind(client) as Release;
    let released = false;
    client.release = ((err?: Error | boolean) => {
      if (!released) {
        released = true;
        gate.release();
      }
      release(err);
    }) as PoolClient['release'];
    return client;
  };
  // Both forms pg-pool offers: a promise (pg's `pool.query`) and a callback (TypeORM).
  (pool as { connect: unknown }).connect = (cb?: ConnectCallback) => {
    const p = checkout();
    if (!cb) return p;
    p.then(
      (c) => cb(undefined, c, c.release as Release),
      (e: Error) => cb(e),
    );
    return undefined;
  };
}

/** `permits` holders at once; waiters with priority are let in first, each lane in order. */
export class PriorityGate {
  private held = 0;
  private readonly first: (() => void)[] = [];
  private readonly later: (() => void)[] = [];

  constructor(private readonly permits: number) {}

  acquire(priority: boolean): Promise<void> {
    if (this.held < this.permits && !this.first.length && !this.later.length) {
      this.held++;
      return Promise.resolve();
    }
    return new Promise((resolve) => (priority ? this.first : this.later).push(resolve));
  }

  release(): void {
    const next = this.first.shift() ?? this.later.shift();
    if (next) next();
    else this.held--;
  }

  get waiting(): { priority: number; background: number } {
    return { priority: this.first.length, background: this.later.length };
  }
}
