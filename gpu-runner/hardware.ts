import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface HardwareSampleInput {
  at: string;
  cpuPercent: number | null;
  memoryMb: number | null;
  gpus: { index: number; utilizationPercent: number; memoryMb: number }[];
}

const TICKS_PER_SECOND = 100;

/**
 * Samples a trainer's utilization: its GPUs from nvidia-smi when it has any and the tool is
 * there; its CPU (share of one core, from /proc) and resident memory otherwise.
 */
export class HardwareSampler {
  private last: { ticks: number; at: number } | null = null;

  constructor(
    private readonly pid: number,
    private readonly gpus: number[],
  ) {}

  sample(): HardwareSampleInput {
    const at = Date.now();
    return { at: new Date(at).toISOString(), ...this.cpu(at), gpus: this.gpuSample() };
  }

  private cpu(at: number): { cpuPercent: number | null; memoryMb: number | null } {
    try {
      const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      const rssPages = Number(fields[21]);
      const prev = this.last;
      this.last = { ticks, at };
      const cpuPercent =
        prev && at > prev.at
          ? ((ticks - prev.ticks) / TICKS_PER_SECOND / ((at - prev.at) / 1000)) * 100
          : null;
      return { cpuPercent, memoryMb: (rssPages * 4096) / 2 ** 20 };
    } catch {
      // Not Linux, or the process is gone: the machine-wide view is better than nothing.
      return { cpuPercent: null, memoryMb: (os.totalmem() - os.freemem()) / 2 ** 20 };
    }
  }

  private gpuSample(): HardwareSampleInput['gpus'] {
    if (!this.gpus.length) return [];
    const r = spawnSync(
      'nvidia-smi',
      [
        '--query-gpu=index,utilization.gpu,memory.used',
        '--format=csv,noheader,nounits',
        `--id=${this.gpus.join(',')}`,
      ],
      { encoding: 'utf8', timeout: 5_000 },
    );
    if (r.error || r.status !== 0) return [];
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(',').map((x) => Number(x.trim())))
      .filter((v) => v.length === 3 && v.every(Number.isFinite))
      .map(([index, utilizationPercent, memoryMb]) => ({ index, utilizationPercent, memoryMb }));
  }
}
