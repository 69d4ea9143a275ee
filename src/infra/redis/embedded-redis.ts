import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/**
 * The embedded default: a redis-server child on a free loopback port, data under
 * `dir`. A pid file lets the next start clean up a server orphaned by a crash (kill -9
 * of the parent leaves no chance to stop the child). Loopback is reachable by every local
 * user, so the server requires a password generated at each start; it is passed in a
 * config file only the owner can read (never on the command line, which `ps` shows).
 */
export interface EmbeddedRedis {
  /** redis://:<password>@127.0.0.1:<port>: a secret; log `redactRedisUrl(url)`. */
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export class RedisBinaryMissingError extends Error {
  constructor(binary: string) {
    super(
      `${binary} was not found on PATH. Install the Debian package "redis-server" ` +
        `(apt-get install redis-server), or set REDIS_URL to an existing Redis.`,
    );
  }
}

export function findRedisBinary(binary = 'redis-server'): string {
  const r = spawnSync(binary, ['--version'], { stdio: 'ignore' });
  if (r.error) throw new RedisBinaryMissingError(binary);
  return binary;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startEmbeddedRedis(opts: {
  dir: string;
  port?: number;
  /** Keep an append-only file so online features survive a restart; tests turn it off. */
  persist?: boolean;
  binary?: string;
}): Promise<EmbeddedRedis> {
  const binary = findRedisBinary(opts.binary);
  fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(opts.dir, 0o700);
  const pidFile = path.join(opts.dir, 'aether-redis.pid');
  killOrphan(pidFile);
  const port = opts.port ?? (await freePort());
  // The password stays with the data directory: clients holding the URL reconnect to a
  // server restarted on it (the file is the owner's alone).
  const confFile = path.join(opts.dir, 'aether-redis.conf');
  const kept = /^requirepass ([0-9a-f]{48})$/m.exec(readIfPresent(confFile))?.[1];
  const password = kept ?? randomBytes(24).toString('hex');
  if (!kept) fs.writeFileSync(confFile, `requirepass ${password}\n`, { mode: 0o600 });
  fs.chmodSync(confFile, 0o600);
  const args = [
    confFile,
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    opts.dir,
    '--save',
    '',
    '--appendonly',
    opts.persist === false ? 'no' : 'yes',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
  ];
  // Its own process group: a Ctrl-C in the terminal reaches us, and we stop Redis last.
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (child.pid === undefined) throw new RedisBinaryMissingError(binary);
  fs.writeFileSync(pidFile, String(child.pid));
  await waitForReady(child, port);
  return {
    url: `redis://:${password}@127.0.0.1:${port}`,
    port,
    pid: child.pid,
    stop: () => stopChild(child, pidFile),
  };
}

function waitForReady(child: ChildProcess, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => fail(new Error(`redis-server on port ${port} did not start within 10 s:\n${out}`)),
      10_000,
    );
    const onData = (buf: Buffer) => {
      out += buf.toString();
      if (out.includes('Ready to accept connections')) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) =>
      fail(new Error(`redis-server exited with code ${code}:\n${out}`));
    const fail = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      // Keep draining so a chatty server never blocks on a full pipe.
      child.stdout?.resume();
      child.stderr?.resume();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

function stopChild(child: ChildProcess, pidFile: string): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      fs.rmSync(pidFile, { force: true });
      resolve();
    };
    if (child.exitCode !== null || child.signalCode !== null) return done();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      done();
    });
    child.kill('SIGTERM');
  });
}

function killOrphan(pidFile: string): void {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmd.includes('redis-server')) process.kill(pid, 'SIGKILL');
  } catch {
    // Not running any more.
  }
  fs.rmSync(pidFile, { force: true });
}

function readIfPresent(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** A Redis URL fit for logs: the password replaced. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
