import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../src/infra/redis/embedded-redis';

/** A real `api` process (the compiled dist/src/main.js, as `npm start` runs it). */
export interface ApiProcess {
  url: string;
  base: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** The repository root, whether this file runs from test/support (jest) or dist/test/support (benchmarks). */
const ROOT = ((up: string) => (path.basename(up) === 'dist' ? path.dirname(up) : up))(
  path.resolve(__dirname, '../..'),
);
const MAIN = path.join(ROOT, 'dist/src/main.js');

export async function spawnApi(
  env: Record<string, string>,
  opts: { readyTimeoutMs?: number } = {},
): Promise<ApiProcess> {
  const port = env.PORT && env.PORT !== '0' ? Number(env.PORT) : await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `api exited with ${child.exitCode ?? child.signalCode} before ready:\n${out}`,
      );
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`api not ready in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `${base}/graphql`,
    base,
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
