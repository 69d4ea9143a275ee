import { resolveServices } from './services';

export default async function globalSetup(): Promise<void> {
  const services = await resolveServices();
  // Workers are forked after this and inherit the environment.
  process.env.TEST_DATABASE_URL = services.databaseUrl;
  process.env.TEST_REDIS_URL = services.redisUrl;
  (globalThis as { __aetherServices?: typeof services }).__aetherServices = services;
}
