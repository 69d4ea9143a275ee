import { type LocalRedisCluster } from './redis-cluster';
import { type ResolvedServices } from './services';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __aetherCluster?: LocalRedisCluster }).__aetherCluster?.stop();
  await (globalThis as { __aetherServices?: ResolvedServices }).__aetherServices?.stop();
}
