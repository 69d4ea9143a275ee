import { type Leases } from '../domain/shared/lease';

export interface Periodic {
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs`, one pass at a time (a pass never overlaps the next).
 */
export function startPeriodic(
  intervalMs: number,
  pass: () => Promise<void>,
  onError: (message: unknown) => void,
): Periodic {
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    running = running.then(async () => {
      if (stopped) return;
      try {
        await pass();
      } catch (err) {
        onError(err instanceof Error ? err.message : err);
      }
    });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

export interface LeasedLoop extends Periodic {
  /** Whether this process holds the lease now. */
  holding(): boolean;
}

/**
 * A singleton loop of the fleet: every process tries to take the lease `name` every third of
 * its TTL and extends it while it holds it; only the holder runs `pass`, every `intervalMs`.
 * A holder that dies stops extending it and another process takes over within a TTL and a
 * third, carrying on from the state the passes record (docs/adr/0027). A pass that outlives
 * its holder's lease (a long pause) is harmless by construction: the passes take their steps
 * with compare-and-set, so a step already taken is recognised, not taken twice.
 */
export function startLeased(o: {
  leases: Leases;
  name: string;
  holder: string;
  ttlMs: number;
  intervalMs: number;
  pass: () => Promise<void>;
  onError: (message: unknown) => void;
  onChange?: (holding: boolean) => void;
}): LeasedLoop {
  let heldUntil = 0;
  let stopped = false;
  const renew = async () => {
    if (stopped) return;
    const asked = Date.now();
    try {
      const token = await o.leases.acquire(o.name, o.holder, o.ttlMs);
      const was = heldUntil > Date.now();
      // Counted from when we asked: the database may have granted it a moment later.
      heldUntil = token === null ? 0 : asked + o.ttlMs;
      const now = heldUntil > Date.now();
      if (was !== now) o.onChange?.(now);
    } catch (err) {
      heldUntil = 0;
      o.onError(err instanceof Error ? err.message : err);
    }
  };
  const renewer = setInterval(() => void renew(), Math.max(50, Math.floor(o.ttlMs / 3)));
  renewer.unref();
  void renew();
  const passes = startPeriodic(
    o.intervalMs,
    async () => {
      if (heldUntil > Date.now()) await o.pass();
    },
    o.onError,
  );
  return {
    holding: () => heldUntil > Date.now(),
    async stop() {
      stopped = true;
      clearInterval(renewer);
      await passes.stop();
      if (heldUntil > Date.now()) await o.leases.release(o.name, o.holder).catch(() => undefined);
      heldUntil = 0;
    },
  };
}
