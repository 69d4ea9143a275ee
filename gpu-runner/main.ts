import fs from 'node:fs';
import os from 'node:os';
import { ApiClient, ApiError } from './api-client';
import { detectGpus } from './gpus';

/**
 * gpu-runner: registers its GPU inventory with the API, heartbeats, and says goodbye on
 * SIGTERM/SIGINT. Pulling and running training jobs builds on this loop.
 *
 *   AETHER_API_URL=http://localhost:4000/graphql AETHER_RUNNER_KEY=aek_… npm run runner
 */
interface RunnerConfig {
  apiUrl: string;
  key: string;
  name: string;
  heartbeatMs: number;
}

function loadRunnerConfig(env: NodeJS.ProcessEnv): RunnerConfig {
  const apiUrl = env.AETHER_API_URL ?? 'http://localhost:4000/graphql';
  let key = env.AETHER_RUNNER_KEY;
  if (!key && env.AETHER_RUNNER_KEY_FILE)
    key = fs.readFileSync(env.AETHER_RUNNER_KEY_FILE, 'utf8').trim();
  if (!key)
    throw new Error(
      'AETHER_RUNNER_KEY (or AETHER_RUNNER_KEY_FILE) must hold an API key with role RUNNER',
    );
  const heartbeatMs = Number(env.RUNNER_HEARTBEAT_MS ?? 10_000);
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 100)
    throw new Error('RUNNER_HEARTBEAT_MS must be an integer >= 100');
  const name = (env.RUNNER_NAME ?? `${os.hostname()}-${process.pid}`)
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 100);
  return { apiUrl, key, name, heartbeatMs };
}

const REGISTER = `mutation Register($input: RegisterRunnerInput!) {
  registerRunner(input: $input) { id name gpus { index } }
}`;
const HEARTBEAT = `mutation Heartbeat($id: ID!) { runnerHeartbeat(id: $id) { id status } }`;
const STOP = `mutation Stop($id: ID!) { stopRunner(id: $id) { id status } }`;

async function main(): Promise<void> {
  const cfg = loadRunnerConfig(process.env);
  const gpus = detectGpus(process.env);
  const api = new ApiClient(cfg.apiUrl, cfg.key);

  // Signals are handled from the first moment: a stop that arrives while registering
  // waits for the registration and then deregisters, instead of killing the process.
  let id: string | null = null;
  let timer: NodeJS.Timeout | undefined = undefined;
  let stopRequested: string | null = null;
  let stopping = false;
  const stop = async (signal: string) => {
    stopRequested = signal;
    // While registering, the stop is finished once the id is known (below).
    if (id === null || stopping) return;
    stopping = true;
    clearInterval(timer);
    log(`received ${signal}, deregistering`);
    await api.request(STOP, { id }).catch((e: Error) => log(`could not deregister: ${e.message}`));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const { registerRunner } = await retrying(() =>
    api.request<{ registerRunner: { id: string } }>(REGISTER, {
      input: { name: cfg.name, hostname: os.hostname(), gpus },
    }),
  );
  id = registerRunner.id;
  log(`registered runner ${cfg.name} (${id}) with ${gpus.length} GPU(s) at ${cfg.apiUrl}`);
  if (stopRequested) return stop(stopRequested);

  timer = setInterval(() => {
    api.request(HEARTBEAT, { id }).catch((e: Error) => log(`heartbeat failed: ${e.message}`));
  }, cfg.heartbeatMs);
}

/** The API may still be starting: retry transient failures for up to a minute. */
async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ApiError) || !e.retryable || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function log(msg: string): void {
  process.stderr.write(`[gpu-runner ${process.pid}] ${msg}\n`);
}

main().catch((e: unknown) => {
  log(`fatal: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(e instanceof ApiError && !e.retryable ? 2 : 1);
});
