import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The embedded default database: PGlite on `dataDir` in a child process
 * (`pglite-server.ts`) that speaks the PostgreSQL wire protocol on a unix socket, so the
 * api reaches it with the `pg` driver like any PostgreSQL and PGlite's work (WASM, one
 * statement at a time) runs on the child's thread, never on the api's event loop.
 *
 * The socket lives in `<dataDir>-run/` (mode 0700, the socket itself 0600): only the
 * owner can connect, and no port is open. A unix socket path is limited to about 100
 * bytes; a longer one moves to a fresh 0700 directory under the system's tmpdir.
 * A pid file there lets the next start stop a server orphaned in a way that left it
 * running (it also stops by itself when the api's end of its stdin closes).
 */
export interface EmbeddedPglite {
  /** The directory holding the socket `.s.PGSQL.<port>`: `pg`'s `host`. */
  socketDir: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** PostgreSQL's own socket name for this port: `pg` connects to `<host>/.s.PGSQL.<port>`. */
const PORT = 5432;
const SOCKET_NAME = `.s.PGSQL.${PORT}`;
const MAX_SOCKET_PATH = 100;

export async function startEmbeddedPglite(opts: {
  dataDir: string;
  /** How long PGlite may take to open (a first start runs initdb); default 120 s. */
  readyTimeoutMs?: number;
}): Promise<EmbeddedPglite> {
  const runDir = `${opts.dataDir}-run`;
  fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(runDir, 0o700);
  const pidFile = path.join(runDir, 'pglite-server.pid');
  await stopOrphan(pidFile);
  let socketDir = runDir;
  let tmpSocketDir: string | null = null;
  if (path.join(runDir, SOCKET_NAME).length > MAX_SOCKET_PATH) {
    tmpSocketDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-pg-'));
    socketDir = tmpSocketDir;
  }
  const socket = path.join(socketDir, SOCKET_NAME);
  // Its own process group: a Ctrl-C in the terminal reaches the api, which closes its
  // connection first and stops the database last.
  const child = spawn(process.execPath, [serverScript(), opts.dataDir, socket], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
  });
  const cleanup = () => {
    fs.rmSync(pidFile, { force: true });
    if (tmpSocketDir) fs.rmSync(tmpSocketDir, { recursive: true, force: true });
  };
  if (child.pid === undefined) {
    cleanup();
    throw new Error('could not start the embedded PGlite server process');
  }
  fs.writeFileSync(pidFile, String(child.pid));
  try {
    await waitForReady(child, opts.readyTimeoutMs ?? 120_000);
  } catch (e) {
    await stopChild(child);
    cleanup();
    throw e;
  }
  return {
    socketDir,
    port: PORT,
    pid: child.pid,
    stop: async () => {
      await stopChild(child);
      cleanup();
    },
  };
}

/**
 * The compiled server script. Under `tsc` output it sits next to this file; when this file
 * runs from source (jest), the build's copy is used (`npm run build` first).
 */
function serverScript(): string {
  const beside = path.join(__dirname, 'pglite-server.js');
  if (fs.existsSync(beside)) return beside;
  const built = path.resolve(__dirname, '..', '..', '..', 'dist', 'src', 'infra', 'db');
  const script = path.join(built, 'pglite-server.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  return script;
}

function waitForReady(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => fail(new Error(`the embedded PGlite server did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (buf: Buffer) => {
      out += buf.toString();
      if (out.includes('ready\n')) {
        done();
        resolve();
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      fail(new Error(`the embedded PGlite server exited (${code ?? signal}) before it was ready`));
    const fail = (e: Error) => {
      done();
      reject(e);
    };
    const done = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.stdout?.resume();
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** SIGTERM (the server closes PGlite, which flushes it), SIGKILL after 30 s. */
function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(kill);
      child.stdin?.destroy();
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** A server left running on this data directory: asked to stop (it flushes), then killed. */
async function stopOrphan(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  const ours = () => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pglite-server');
    } catch {
      return false;
    }
  };
  if (ours()) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && ours(); i++) await new Promise((r) => setTimeout(r, 100));
    if (ours()) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && ours(); i++) await new Promise((r) => setTimeout(r, 100));
  }
  fs.rmSync(pidFile, { force: true });
}
