import { startRedisCluster } from './redis-cluster';
import { resolveServices } from './services';

export default async function globalSetup(): Promise<void> {
  const services = await resolveServices();
  // Workers are forked after this and inherit the environment.
  process.env.TEST_DATABASE_URL = services.databaseUrl;
  process.env.TEST_REDIS_URL = services.redisUrl;
  // The `cluster` project's files run on a local three-master Redis Cluster (docs/adr/0029).
  const cluster = await startRedisCluster();
  process.env.TEST_REDIS_CLUSTER_NODES = cluster.nodes;
  (globalThis as { __aetherServices?: typeof services }).__aetherServices = services;
  (globalThis as { __aetherCluster?: typeof cluster }).__aetherCluster = cluster;
}
