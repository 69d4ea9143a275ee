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
 * `inRequest` scope) gets it before any waiting background statement, unless that one has
 * waited `backgroundMaxWaitMs` already: under a load that leaves no gaps, background work
 * still gets a connection that often, and a request waits at most for the statements
 * already running and that one.
 */
export function prioritizeRequests(
  pool: Pool,
  opts: {
    connections: number;
    backgroundMaxWaitMs: number;
    /**
     * A checkout that waits longer fails as the pool's own would ("timeout exceeded when
     * trying to connect", a 503): the gate, not the pool, is where statements queue now.
     */
    acquireTimeoutMs?: number;
    /** How long each checkout waited for its turn, by lane. */
    onWait?: (lane: Lane, seconds: number) => void;
    /** How long each checkout held its connection (what it made others wait), by lane. */
    onHeld?: (lane: Lane, seconds: number) => void;
  },
): void {
  const gate = new PriorityGate(opts.connections, opts.backgroundMaxWaitMs);
  const connect = pool.connect.bind(pool) as () => Promise<PoolClient>;
  const checkout = async (): Promise<PoolClient> => {
    const lane: Lane = inOpenRequest() ? 'request' : 'background';
    const start = performance.now();
    await gate.acquire(lane, opts.acquireTimeoutMs);
    const granted = performance.now();
    opts.onWait?.(lane, (granted - start) / 1000);
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
        opts.onHeld?.(lane, (performance.now() - granted) / 1000);
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

export type Lane = 'request' | 'background';

/**
 * How long a background statement waits behind requests before it goes next, by default
 * (`DATABASE_BACKGROUND_MAX_WAIT_MS`). Measured in docs/adr/0020: 50 ms let compaction and a
 * dataset build keep more of their speed under a saturating load but put the request p99 at
 * 3-4x idle; 250 ms keeps it under 3x and the background work about 3x slower than alone.
 */
export const DEFAULT_BACKGROUND_MAX_WAIT_MS = 250;

/**
 * `permits` holders at once. A free permit goes to the oldest request waiter, unless the
 * oldest background waiter has waited `backgroundMaxWaitMs`; each lane is served in order.
 */
export class PriorityGate {
  private held = 0;
  private readonly requests: (() => void)[] = [];
  private readonly background: { since: number; go: () => void }[] = [];

  constructor(
    private readonly permits: number,
    private readonly backgroundMaxWaitMs: number,
  ) {}

  acquire(lane: Lane, timeoutMs?: number): Promise<void> {
    if (this.held < this.permits && !this.requests.length && !this.background.length) {
      this.held++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        clearTimeout(timer);
        resolve();
      };
      const waiter = { since: performance.now(), go };
      if (lane === 'request') this.requests.push(go);
      else this.background.push(waiter);
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              const queue: unknown[] = lane === 'request' ? this.requests : this.background;
              const i = queue.indexOf(lane === 'request' ? go : waiter);
              if (i < 0) return;
              queue.splice(i, 1);
              reject(new Error('timeout exceeded when trying to connect'));
            }, timeoutMs);
    });
  }

  release(): void {
    const overdue =
      this.background.length > 0 &&
      performance.now() - this.background[0].since >= this.backgroundMaxWaitMs;
    const next =
      (overdue ? this.background.shift()?.go : undefined) ??
      this.requests.shift() ??
      this.background.shift()?.go;
    if (next) next();
    else this.held--;
  }
}
