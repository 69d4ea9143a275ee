import Redis, { type ChainableCommander, Cluster, type RedisOptions } from 'ioredis';

/** One Redis server, or a Redis Cluster (docs/adr/0029): every store takes either. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a `redis://` URL, or the seed nodes of a cluster (REDIS_CLUSTER_NODES). */
export type RedisTarget =
  string | { nodes: { host: string; port: number }[]; username?: string; password?: string };

/**
 * One place for client options. Commands fail fast while Redis is away (readiness must
 * answer, not hang), and the client keeps reconnecting so service resumes without a
 * restart once Redis is back.
 */
export function createRedisClient(
  target: RedisTarget,
  name: string,
  opts: {
    subscriber?: boolean;
    /**
     * A command unanswered this long is rejected ("Command timed out"): a paused Redis fails
     * requests fast. Not for connections that block on purpose (XREADGROUP BLOCK).
     */
    commandTimeoutMs?: number;
  } = {},
): RedisClient {
  const options: RedisOptions = {
    connectionName: name,
    commandTimeout: opts.commandTimeoutMs,
    // A subscriber connection that reconnects resubscribes first; the ready check's INFO
    // would then be refused ("only subscriber commands may be used") and fail the client.
    enableReadyCheck: !opts.subscriber,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    lazyConnect: false,
  };
  if (typeof target === 'string') return new Redis(target, options);
  return new Cluster(target.nodes, {
    redisOptions: { ...options, username: target.username, password: target.password },
    enableReadyCheck: !opts.subscriber,
    enableOfflineQueue: true,
    // Subscribers use sharded pub/sub: one connection per node that holds a channel.
    shardedSubscribers: opts.subscriber === true,
    clusterRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    // A moved slot (resharding, a failover) is followed, a bounded number of times.
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    slotsRefreshTimeout: 2_000,
  });
}

/** Items sent at once: a command's timeout runs from when it is sent, and others wait behind. */
export const PIPELINE_ITEMS = 500;

/**
 * Commands whose keys share one hash tag per item, run as one pipeline on one server and as
 * one pipeline per item on a cluster (a pipeline may not span nodes; the items' pipelines run
 * concurrently). `transaction` makes each item's commands one MULTI. Results in item order,
 * each item's commands in the order `add` queued them. At most PIPELINE_ITEMS items are in
 * flight: a batch of 10,000 scripts sent at once made the last ones wait past the command
 * timeout on a busy server (and every other client wait behind them).
 */
export async function execPerItem<T>(
  redis: RedisClient,
  items: readonly T[],
  add: (p: ChainableCommander, item: T) => void,
  transaction = false,
): Promise<[Error | null, unknown][]> {
  const out: [Error | null, unknown][] = [];
  for (let lo = 0; lo < items.length; lo += PIPELINE_ITEMS) {
    const chunk = items.slice(lo, lo + PIPELINE_ITEMS);
    if (!(redis instanceof Cluster)) {
      const p = transaction ? redis.multi() : redis.pipeline();
      for (const item of chunk) add(p, item);
      out.push(...((await p.exec()) ?? []));
      continue;
    }
    const each = await Promise.all(
      chunk.map((item) => {
        const p = transaction ? redis.multi() : redis.pipeline();
        add(p, item);
        return p.exec();
      }),
    );
    for (const r of each) out.push(...(r ?? []));
  }
  return out;
}

/** PING with a deadline: an unreachable Redis answers "down" in bounded time. */
export async function pingRedis(client: RedisClient, timeoutMs = 1_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no PONG within ${timeoutMs} ms (${client.status})`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([client.ping(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** QUIT when connected (bounded wait); otherwise just drop the socket and stop reconnecting. */
export async function closeRedis(client: RedisClient, timeoutMs = 1_000): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.quit(),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
  } catch {
    // fall through to disconnect
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
