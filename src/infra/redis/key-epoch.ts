import { randomBytes } from 'node:crypto';
import { type RedisClient } from './redis-client';
import { type KeyEpoch } from '../../domain/auth/api-key.repository';

/**
 * The key epoch in Redis: one string every api process reads before it trusts a cached
 * verdict on an API key. A Redis that lost the value (restarted empty) is given a fresh
 * random one, which matches no cached verdict. Any connection error or reconnection is a
 * disruption: what was cached while the epoch could not be watched is dropped.
 */
export class RedisKeyEpoch implements KeyEpoch {
  private readonly key: string;
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.key = `${prefix}auth:epoch`;
    const disrupted = () => this.listeners.forEach((l) => l());
    redis.on('error', disrupted);
    redis.on('ready', disrupted);
  }

  async read(): Promise<string> {
    const v = await this.redis.get(this.key);
    if (v !== null) return v;
    await this.redis.set(this.key, fresh(), 'NX');
    return (await this.redis.get(this.key)) ?? '';
  }

  async bump(): Promise<void> {
    await this.redis.set(this.key, fresh());
  }

  onDisruption(listener: () => void): void {
    this.listeners.push(listener);
  }
}

function fresh(): string {
  return randomBytes(12).toString('base64url');
}
