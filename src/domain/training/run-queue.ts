/**
 * Port: the queue of runs waiting for GPUs, and the GPUs each runner has free.
 *
 * Strict FIFO: a claim only ever takes the run at the head, and only when the claiming
 * runner has enough free GPUs with enough memory (and a free slot) for it; otherwise it gets nothing, so a
 * big run at the head is never overtaken. Claims are atomic: the GPUs allocated on a
 * runner never exceed its inventory, whatever number of runners claim at once.
 */
export interface RunQueue {
  /** Declares a runner's GPUs (all free; memory in MB, null when unknown) and its slots. */
  registerRunner(
    runnerId: string,
    gpus: readonly { index: number; memoryMb: number | null }[],
    slots: number,
  ): Promise<void>;
  /** The runner is gone: nothing more is allocated on it. */
  retireRunner(runnerId: string): Promise<void>;
  /**
   * Puts a run in line at its submission place (`seq`); a no-op if it is already there.
   * With `gpuMemoryMb`, only GPUs known to have at least that much memory are given to it.
   */
  enqueue(run: {
    id: string;
    seq: number;
    gpuCount: number;
    gpuMemoryMb: number | null;
  }): Promise<void>;
  /** Takes a queued run out of line (cancelled); false if it was not there. */
  remove(runId: string): Promise<boolean>;
  /** The head of the queue if it fits on the runner now; it is then leased to the runner. */
  claim(runnerId: string, leaseUntil: number): Promise<Claim | null>;
  /** Extends the lease; false if the runner no longer holds it. */
  renew(runId: string, runnerId: string, leaseUntil: number): Promise<boolean>;
  /** The run is over on this runner: its GPUs are free again. False if the lease was gone. */
  release(runId: string, runnerId: string): Promise<boolean>;
  /** The run goes back in line at its own place (a retry): its GPUs are freed. */
  requeue(runId: string, runnerId: string): Promise<boolean>;
  /** Leases that ran out: back in line at their own place, their GPUs freed. */
  requeueExpired(now: number): Promise<string[]>;
  /** Whether each run is leased to a runner now. */
  leased(runIds: readonly string[]): Promise<boolean[]>;
  /** 1 for the head, null when not queued. */
  positions(runIds: readonly string[]): Promise<(number | null)[]>;
  /** The run next in line, with its submission seq. */
  head(): Promise<{ runId: string; seq: number } | null>;
}

export interface Claim {
  runId: string;
  gpus: number[];
}
