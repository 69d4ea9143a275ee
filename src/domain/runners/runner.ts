export interface Gpu {
  index: number;
  name: string;
  memoryMb: number | null;
}

export enum RunnerStatus {
  ONLINE = 'ONLINE',
  /** Missed heartbeats for longer than the lease: presumed dead. */
  LOST = 'LOST',
  /** Said goodbye on shutdown. */
  STOPPED = 'STOPPED',
}

export interface Runner {
  id: string;
  name: string;
  hostname: string;
  gpus: Gpu[];
  keyId: string;
  registeredAt: Date;
  lastHeartbeatAt: Date;
  stoppedAt: Date | null;
}

export enum RunnerErrorCode {
  RUNNER_NOT_FOUND = 'RUNNER_NOT_FOUND',
  INVALID_RUNNER = 'INVALID_RUNNER',
  NOT_YOUR_RUNNER = 'NOT_YOUR_RUNNER',
  RUNNER_STOPPED = 'RUNNER_STOPPED',
}

/** A runner that has not heartbeated for this long is LOST; its work may be reassigned. */
export const RUNNER_LEASE_MS = 30_000;

export function runnerStatus(r: Runner, now: Date): RunnerStatus {
  if (r.stoppedAt) return RunnerStatus.STOPPED;
  return now.getTime() - r.lastHeartbeatAt.getTime() > RUNNER_LEASE_MS
    ? RunnerStatus.LOST
    : RunnerStatus.ONLINE;
}
