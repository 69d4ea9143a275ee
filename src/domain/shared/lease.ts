/**
 * Port: named leases shared by every api process, so that a singleton loop (canary reviews,
 * autoscaling, monitors and retraining, compaction, the event relay) runs on one process at
 * a time. `acquire` takes a free or expired lease, or extends one the holder already has, and
 * returns its fencing token (higher with each new holder), or null while another holds it.
 */
export interface Leases {
  acquire(name: string, holder: string, ttlMs: number): Promise<number | null>;
  release(name: string, holder: string): Promise<void>;
  /** Who holds what, for /readyz and the fleet tests. */
  holders(): Promise<{ name: string; holder: string; token: number; expiresAt: Date }[]>;
}
