import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort, startEmbeddedRedis } from '../../src/infra/redis/embedded-redis';

/**
 * Finds the real servers the suite runs against, in this order: the TEST_* variable, the
 * default local port, or a throwaway server started from the installed binaries.
 */
export interface ResolvedServices {
  databaseUrl: string;
  redisUrl: string;
  stop(): Promise<void>;
}

export async function resolveServices(): Promise<ResolvedServices> {
  const stops: Array<() => Promise<void>> = [];
  let databaseUrl = process.env.TEST_DATABASE_URL;
  if (!databaseUrl) {
    if (await postgresAnswers('postgres://postgres@127.0.0.1:5432/postgres')) {
      databaseUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
    } else {
      const pg = await startThrowawayPostgres();
      databaseUrl = pg.url;
      stops.push(pg.stop);
    }
  }
  let redisUrl = process.env.TEST_REDIS_URL;
  if (!redisUrl) {
    if (await portOpen(6379)) {
      redisUrl = 'redis://127.0.0.1:6379';
    } else {
      const r = await startEmbeddedRedis({
        dir: fs.mkdtempSync(path.join(os.tmpdir(), 'aether-test-redis-')),
        persist: false,
      });
      redisUrl = r.url;
      stops.push(r.stop);
    }
  }
  return {
    databaseUrl,
    redisUrl,
    stop: async () => {
      for (const s of stops.reverse()) await s();
    },
  };
}

async function postgresAnswers(url: string): Promise<boolean> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function findPgBin(name: string): string {
  const onPath = spawnSync('which', [name], { encoding: 'utf8' });
  if (onPath.status === 0) return onPath.stdout.trim();
  const base = '/usr/lib/postgresql';
  if (fs.existsSync(base)) {
    for (const v of fs.readdirSync(base).sort().reverse()) {
      const p = path.join(base, v, 'bin', name);
      if (fs.existsSync(p)) return p;
    }
  }
  throw new Error(
    `${name} not found: install the Debian package "postgresql", or set TEST_DATABASE_URL`,
  );
}

async function startThrowawayPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-test-pg-'));
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root; hand the directory to the postgres user when we are root.
  const run = (bin: string, args: string[]) => {
    const cmd = asRoot ? 'su' : bin;
    const full = asRoot
      ? ['postgres', '-s', '/bin/sh', '-c', [bin, ...args].map((a) => `'${a}'`).join(' ')]
      : args;
    const r = spawnSync(cmd, full, { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr || r.stdout}`);
  };
  if (asRoot) spawnSync('chown', ['-R', 'postgres', dir]);
  const data = path.join(dir, 'data');
  run(findPgBin('initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']);
  const port = await freePort();
  run(findPgBin('pg_ctl'), [
    '-D',
    data,
    '-l',
    path.join(dir, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
    'start',
  ]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      run(findPgBin('pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
