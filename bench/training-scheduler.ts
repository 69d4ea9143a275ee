import { type Principal } from '../src/domain/auth/api-key';
import { Role } from '../src/domain/auth/role';
import { type Claim } from '../src/domain/training/run-queue';
import { RunStatus } from '../src/domain/training/training-run';
import { RedisRunQueue } from '../src/infra/redis/run-queue';
import { createRedisClient, closeRedis } from '../src/infra/redis/redis-client';
import { round, scale, writeResult } from './support/bench';
import { buildFloatDataset } from '../test/support/datasets';
import { startBenchPlatform } from './support/platform';

/**
 * training-scheduler: 50 simulated runners (declared pools of 1 to 8 GPUs, a slot per GPU)
 * drain 5,000 queued runs needing 1, 2, 4 or 8 GPUs through the real TrainingService (Redis
 * queue + Postgres state of record). Each claimed run "trains" for 1-20 ms, then finishes.
 *
 * - overcommits: a claim handing out a GPU the runner does not have or has already given.
 * - fifo_violations: a claim that completed for a run while an older run was still at the
 *   queue's head (read from Redis by a sampler every 2 ms; with no requeues in this run, the
 *   queue holds exactly the unclaimed suffix of submission order).
 * - max_head_wait_ms: longest time a run waited at the head (from the claim of the run
 *   before it to its own claim): what strict FIFO costs when an 8-GPU run is at the head.
 * Baseline in the same run: the same simulation against the Redis queue alone (no Postgres,
 * no service), whose claims/s bounds what the service can reach.
 */
const RUNNERS = 50;
/** How long an idle runner waits before asking again. */
const POLL_MS = 5;

export async function main(): Promise<void> {
  const runs = Math.max(200, Math.round(5_000 * scale()));
  const p = await startBenchPlatform('training_scheduler', {
    FEATURE_STREAM_CONSUMER: 'off',
    TRAINING_LEASE_MS: '600000',
  });
  try {
    const s = p.app.services;
    const runnerKey = await s.apiKeys.create(null, { name: 'bench-runners', role: Role.RUNNER });
    const actor: Principal = {
      keyId: runnerKey.key.id,
      name: runnerKey.key.name,
      role: Role.RUNNER,
    };
    // One READY snapshot for the runs to point at (its content does not matter here).
    const { id: datasetId } = await buildFloatDataset(s, {
      view: 'sim',
      features: ['x'],
      rows: [{ entityKey: 'a', at: Date.now() - 60_000, values: { x: 1 }, label: 0 }],
    });
    const pools = Array.from({ length: RUNNERS }, (_, i) => 1 + (i % 8));
    const need = (i: number) => [1, 1, 1, 2, 2, 4, 8][(i * 5) % 7];

    // The service: submission, then 50 runners claiming and finishing.
    const runnerIds: string[] = [];
    for (const [i, gpus] of pools.entries()) {
      const r = await s.runners.register(actor, {
        name: `sim-${i}`,
        hostname: 'bench',
        gpus: Array.from({ length: gpus }, (_, index) => ({ index, name: 'sim', memoryMb: null })),
      });
      runnerIds.push(r.id);
    }
    const seqOf = new Map<string, number>();
    for (let i = 0; i < runs; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, runs - i) }, (_, k) =>
          s.training.submit({
            experiment: 'bench',
            builtinTrainer: 'logistic_regression',
            datasetId,
            gpuCount: need(i + k),
          }),
        ),
      );
      for (const r of batch) seqOf.set(r.id, r.seq);
    }
    const samplerRedis = createRedisClient(p.env.REDIS_URL, 'bench-sampler');
    const sampler = new RedisRunQueue(samplerRedis, p.env.REDIS_PREFIX);
    const service = await simulate({
      runners: runnerIds.map((id, i) => ({ id, gpus: pools[i] })),
      total: runs,
      seqOf,
      claim: async (runnerId) => {
        const r = await s.runExecution.claim(actor, runnerId);
        return r ? { runId: r.id, gpus: r.gpus } : null;
      },
      finish: async (runnerId, runId) => {
        await s.runExecution.finish(actor, runId, runnerId, { outcome: RunStatus.SUCCEEDED });
      },
      head: () => sampler.head(),
    });
    await closeRedis(samplerRedis);

    // Baseline: the Redis queue alone, same runners and runs, under its own prefix.
    const redis = createRedisClient(p.env.REDIS_URL, 'bench-queue-only');
    const prefix = `${p.env.REDIS_PREFIX}baseline:`;
    const bare = new RedisRunQueue(redis, prefix);
    const bareRunners = pools.map((gpus, i) => ({ id: `bare-${i}`, gpus }));
    for (const r of bareRunners)
      await bare.registerRunner(
        r.id,
        Array.from({ length: r.gpus }, (_, index) => ({ index, memoryMb: null })),
        r.gpus,
      );
    const bareSeq = new Map<string, number>();
    for (let i = 0; i < runs; i++) {
      await bare.enqueue({ id: `run-${i}`, seq: i + 1, gpuCount: need(i), gpuMemoryMb: null });
      bareSeq.set(`run-${i}`, i + 1);
    }
    const baseline = await simulate({
      runners: bareRunners,
      total: runs,
      seqOf: bareSeq,
      claim: (runnerId) => bare.claim(runnerId, Date.now() + 600_000),
      finish: async (runnerId, runId) => {
        await bare.release(runId, runnerId);
      },
      head: () => bare.head(),
    });
    await closeRedis(redis);

    writeResult('training-scheduler', {
      claims_per_second: round(service.claimsPerSecond, 0),
      max_head_wait_ms: round(service.maxHeadWaitMs, 1),
      overcommits: service.overcommits,
      fifo_violations: service.fifoViolations,
      queue_only_claims_per_second: round(baseline.claimsPerSecond, 0),
      queue_only_overcommits: baseline.overcommits,
      queue_only_fifo_violations: baseline.fifoViolations,
      claims_ratio_vs_queue_only: round(service.claimsPerSecond / baseline.claimsPerSecond, 3),
      runners: RUNNERS,
      runs,
    });
  } finally {
    await p.close();
  }
}

interface SimResult {
  claimsPerSecond: number;
  maxHeadWaitMs: number;
  overcommits: number;
  fifoViolations: number;
}

/** Runners claim as long as they get runs, "train" each for 1-20 ms, and poll every POLL_MS when idle. */
async function simulate(o: {
  runners: { id: string; gpus: number }[];
  total: number;
  seqOf: Map<string, number>;
  claim(runnerId: string): Promise<Claim | null>;
  finish(runnerId: string, runId: string): Promise<void>;
  head(): Promise<{ runId: string; seq: number } | null>;
}): Promise<SimResult> {
  let claimed = 0;
  let finished = 0;
  let overcommits = 0;
  let fifoViolations = 0;
  let maxClaimedSeq = 0;
  const claimedAt = new Map<number, number>();
  let rng = 12345;
  const random = () => (rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let done = false;

  const sampler = (async () => {
    while (!done) {
      // Every claim that completed before this read; an older run still at the head means a
      // younger one was taken past it.
      const seen = maxClaimedSeq;
      const h = await o.head();
      if (h && h.seq < seen) fifoViolations++;
      await sleep(2);
    }
  })();

  const t0 = performance.now();
  let tLast = t0;
  await Promise.all(
    o.runners.map(async (runner) => {
      const inUse = new Set<number>();
      const running: Promise<void>[] = [];
      while (finished < o.total) {
        const c = claimed < o.total ? await o.claim(runner.id) : null;
        if (!c) {
          await sleep(POLL_MS);
          continue;
        }
        claimed++;
        tLast = performance.now();
        const seq = o.seqOf.get(c.runId) as number;
        claimedAt.set(seq, tLast);
        maxClaimedSeq = Math.max(maxClaimedSeq, seq);
        for (const g of c.gpus) {
          if (g < 0 || g >= runner.gpus || inUse.has(g)) overcommits++;
          inUse.add(g);
        }
        running.push(
          sleep(1 + Math.floor(random() * 20)).then(async () => {
            // The trainer has exited: its GPUs are idle before the runner reports it.
            for (const g of c.gpus) inUse.delete(g);
            await o.finish(runner.id, c.runId);
            finished++;
          }),
        );
      }
      await Promise.all(running);
    }),
  );
  done = true;
  await sampler;
  const seqs = [...claimedAt.keys()].sort((a, b) => a - b);
  let maxHeadWaitMs = 0;
  for (let i = 1; i < seqs.length; i++)
    maxHeadWaitMs = Math.max(
      maxHeadWaitMs,
      (claimedAt.get(seqs[i]) as number) - (claimedAt.get(seqs[i - 1]) as number),
    );
  return {
    claimsPerSecond: o.total / ((tLast - t0) / 1000),
    maxHeadWaitMs,
    overcommits,
    fifoViolations,
  };
}
