import { spawnSync } from 'node:child_process';
import { parseDeclaredGpus, parseNvidiaSmi } from '../src/domain/runners/gpu-inventory';
import { type Gpu } from '../src/domain/runners/runner';

/** GPU_RUNNER_GPUS when set, else what nvidia-smi reports, else none (a CPU-only runner). */
export function detectGpus(env: NodeJS.ProcessEnv): Gpu[] {
  const declared = env.GPU_RUNNER_GPUS;
  if (declared !== undefined && declared.trim() !== '') {
    const gpus = parseDeclaredGpus(declared);
    if (!gpus)
      throw new Error(
        `GPU_RUNNER_GPUS must be a comma-separated list of distinct GPU indexes like 0,1,2,3 (got "${declared}")`,
      );
    return gpus;
  }
  const r = spawnSync(
    'nvidia-smi',
    ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'],
    {
      encoding: 'utf8',
      timeout: 10_000,
    },
  );
  if (r.error || r.status !== 0) return [];
  return parseNvidiaSmi(r.stdout);
}
