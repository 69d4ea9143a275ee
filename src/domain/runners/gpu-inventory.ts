import { type Gpu } from './runner';

/**
 * `GPU_RUNNER_GPUS=0,1,2,3` declares a pool by index (how tests simulate several GPUs on
 * a machine without one). Returns null when the value is not such a list.
 */
export function parseDeclaredGpus(value: string): Gpu[] | null {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0 || !parts.every((p) => /^\d+$/.test(p))) return null;
  const indexes = parts.map(Number);
  if (new Set(indexes).size !== indexes.length) return null;
  return indexes.map((index) => ({ index, name: 'declared', memoryMb: null }));
}

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): Gpu[] {
  return csv
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((line) => {
      const [index, name, mem] = line.split(',').map((s) => s.trim());
      const memoryMb = Number(mem);
      return { index: Number(index), name, memoryMb: Number.isFinite(memoryMb) ? memoryMb : null };
    })
    .filter((g) => Number.isInteger(g.index));
}
