import fs from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * The embedded database's own process (started by `startEmbeddedPglite`, never by hand):
 * PGlite on `<dataDir>` behind the PostgreSQL wire protocol on the unix socket `<socket>`,
 * one connection at a time. Its queries run on this process's event loop, not the api's.
 *
 *   node pglite-server.js <dataDir> <socket>
 *
 * It prints `ready` on stdout once it listens, and stops cleanly (server closed, PGlite
 * closed, which flushes it) on SIGTERM or SIGINT, or when its stdin ends: the api holds the
 * other end of that pipe, so the api's exit, even by SIGKILL, stops this process too.
 */
async function main(): Promise<void> {
  const [dataDir, socket] = process.argv.slice(2);
  if (!dataDir || !socket) throw new Error('usage: pglite-server <dataDir> <socket>');
  const db = await PGlite.create({ dataDir });
  // A socket left by a process that was killed; the caller made sure none still runs.
  fs.rmSync(socket, { force: true });
  const server = new PGLiteSocketServer({ db, path: socket, maxConnections: 1 });
  await server.start();
  fs.chmodSync(socket, 0o600);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      try {
        await server.stop();
        await db.close();
      } finally {
        fs.rmSync(socket, { force: true });
      }
    })().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`pglite-server: stopping failed: ${String(err)}\n`);
        process.exit(1);
      },
    ));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(
    `pglite-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
