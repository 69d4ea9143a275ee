import 'reflect-metadata';
import { PendingMigrationsError, startApp } from './app/app';
import { ConfigError, loadConfig } from './infra/config/config';
import { RedisBinaryMissingError } from './infra/redis/embedded-redis';

/** The `api` process: serve until SIGTERM/SIGINT, then shut down gracefully. */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await startApp(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`received ${signal}, shutting down\n`);
    const force = setTimeout(() => process.exit(1), config.shutdownGraceMs + 10_000);
    force.unref();
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  if (
    e instanceof ConfigError ||
    e instanceof RedisBinaryMissingError ||
    e instanceof PendingMigrationsError
  ) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `aether failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exit(1);
});
