import os from 'node:os';
import { ApiClient, ApiError } from './api-client';
import { BUILTIN_TRAINER, CLAIM, type ClaimedRun, RunExecutor } from './executor';
import { detectGpus } from './gpus';
import { loadRunnerConfig, loadSandboxConfig } from './runner-config';
import { TrainerSandbox } from './trainer-sandbox';

/**
 * gpu-runner: registers its GPU inventory with the API, heartbeats, claims runs from the
 * queue when it has room, runs their trainers (see executor.ts), and says goodbye on
 * SIGTERM/SIGINT.
 *
 *   AETHER_API_URL=http://localhost:4000/graphql AETHER_RUNNER_KEY=aek_… npm run runner
 */
const REGISTER = `mutation Register($input: RegisterRunnerInput!) {
  registerRunner(input: $input) { id name gpus { index } }
}`;
const HEARTBEAT = `mutation Heartbeat($id: ID!) { runnerHeartbeat(id: $id) { id status } }`;
const STOP = `mutation Stop($id: ID!) { stopRunner(id: $id) { id status } }`;

async function main(): Promise<void> {
  const cfg = loadRunnerConfig(process.env);
  const gpus = detectGpus(process.env);
  const { config: sandboxConfig, warning } = loadSandboxConfig(
    process.env,
    process.getuid?.() ?? -1,
  );
  const sandbox = new TrainerSandbox(sandboxConfig);
  sandbox.check([BUILTIN_TRAINER]);
  if (warning) log(`warning: ${warning}`);
  else log(`trainers run as ${sandboxConfig.user?.name} (uid ${sandboxConfig.user?.uid})`);
  const api = new ApiClient(cfg.apiUrl, cfg.key);

  // Signals are handled from the first moment: a stop that arrives while registering
  // waits for the registration and then deregisters, instead of killing the process.
  let id: string | null = null;
  let timer: NodeJS.Timeout | undefined = undefined;
  let poller: NodeJS.Timeout | undefined = undefined;
  let executor: RunExecutor | null = null;
  let stopRequested: string | null = null;
  let stopping = false;
  const stop = async (signal: string) => {
    stopRequested = signal;
    // While registering, the stop is finished once the id is known (below).
    if (id === null || stopping) return;
    stopping = true;
    clearInterval(timer);
    clearInterval(poller);
    // Trainers stop with the runner; their leases run out and the runs go back in line.
    executor?.killAll();
    log(`received ${signal}, deregistering`);
    await api.request(STOP, { id }).catch((e: Error) => log(`could not deregister: ${e.message}`));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const { registerRunner } = await retrying(() =>
    api.request<{ registerRunner: { id: string } }>(REGISTER, {
      input: { name: cfg.name, hostname: os.hostname(), gpus, slots: cfg.slots },
    }),
  );
  id = registerRunner.id;
  log(`registered runner ${cfg.name} (${id}) with ${gpus.length} GPU(s) at ${cfg.apiUrl}`);
  if (stopRequested) return stop(stopRequested);

  timer = setInterval(() => {
    api.request(HEARTBEAT, { id }).catch((e: Error) => log(`heartbeat failed: ${e.message}`));
  }, cfg.heartbeatMs);

  const runnerId = id;
  const exec = (executor = new RunExecutor(api, runnerId, sandbox, {
    ...cfg,
    secrets: [cfg.key],
    log,
  }));
  const slots = cfg.slots ?? Math.max(1, gpus.length);
  let active = 0;
  let polling = false;
  const poll = async () => {
    if (polling || stopping) return;
    polling = true;
    try {
      while (!stopping && active < slots) {
        const r = await api.request<{ claimRun: ClaimedRun | null }>(CLAIM, { runnerId });
        if (!r.claimRun) break;
        const run = r.claimRun;
        active++;
        log(`run ${run.id}: ${run.trainer.name} on GPUs [${run.gpus.join(',')}]`);
        void exec.execute(run).finally(() => {
          active--;
          log(`run ${run.id}: done here`);
          void poll();
        });
      }
    } catch (e) {
      log(`claim failed: ${(e as Error).message}`);
    } finally {
      polling = false;
    }
  };
  poller = setInterval(() => void poll(), cfg.pollMs);
  void poll();
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
