import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

export interface RunnerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  log(): string;
}

/** A real gpu-runner process (the built one in dist/) against `apiUrl`. */
export function startRunner(
  apiUrl: string,
  key: string,
  env: Record<string, string>,
): RunnerProcess {
  // From test/support under jest, or dist/test/support when a built demo uses it.
  const up = path.resolve(__dirname, '../..');
  const dist = path.basename(up) === 'dist' ? up : path.join(up, 'dist');
  const child = spawn(process.execPath, [path.join(dist, 'gpu-runner', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', AETHER_API_URL: apiUrl, AETHER_RUNNER_KEY: key, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  child.stdout?.on('data', (b: Buffer) => (log += b.toString()));
  return { child, exited: new Promise((r) => child.once('exit', r)), log: () => log };
}

/** Polls `fn` until it returns something other than undefined. */
export async function until<T>(fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}
