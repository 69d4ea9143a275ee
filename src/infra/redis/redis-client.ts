import Redis from 'ioredis';

/**
 * One place for client options. Commands fail fast while Redis is away (readiness must
 * answer, not hang), and the client keeps reconnecting so service resumes without a
 * restart once Redis is back.
 */
export function createRedisClient(
  url: string,
  name: string,
  opts: {
    subscriber?: boolean;
    /**
     * A command unanswered this long is rejected ("Command timed out"): a paused Redis fails
     * requests fast. Not for connections that block on purpose (XREADGROUP BLOCK).
     */
    commandTimeoutMs?: number;
  } = {},
): Redis {
  return new Redis(url, {
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
  });
}

/** PING with a deadline: an unreachable Redis answers "down" in bounded time. */
export async function pingRedis(client: Redis, timeoutMs = 1_000): Promise<void> {
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
export async function closeRedis(client: Redis, timeoutMs = 1_000): Promise<void> {
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
