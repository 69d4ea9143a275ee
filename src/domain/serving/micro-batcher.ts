/**
 * Coalesces concurrent single-row calls into one batched call. A batch leaves when it holds
 * `maxBatch` rows, or `maxWaitUs` after its first row, or — while every lane is busy — as
 * soon as a batch returns (one batch in flight per lane, a lane being a replica: arrivals
 * meanwhile wait and go together). Each caller gets its own row of the batch's result.
 */
export interface BatcherOptions {
  maxBatch: number;
  maxWaitUs: number;
}

export class MicroBatcher<I, O> {
  private queue: { input: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private inFlight = 0;
  private depthSum = 0;
  private arrivals = 0;
  /** Batches run and rows served, for metrics and tests. */
  readonly stats = { batches: 0, rows: 0, maxBatchSeen: 0 };

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    private readonly o: BatcherOptions,
    /** How many batches may run at once (the replicas ready to take one). */
    private readonly lanes: () => number = () => 1,
  ) {}

  submit(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.depthSum += this.queue.length - 1;
      this.arrivals++;
      if (this.queue.length >= this.o.maxBatch) this.flush();
      else if (!this.timer && !this.busy) this.schedule();
    });
  }

  /**
   * The mean number of rows each arrival found waiting ahead of it since the last call
   * (the autoscaler's queue depth), and how many arrived; resets both.
   */
  takeDepth(): { meanDepth: number; arrivals: number } {
    const out = {
      meanDepth: this.arrivals ? this.depthSum / this.arrivals : 0,
      arrivals: this.arrivals,
    };
    this.depthSum = 0;
    this.arrivals = 0;
    return out;
  }

  /** Sends waiting rows now if a lane is free (a lane was just added). */
  kick(): void {
    this.flush();
  }

  private get busy(): boolean {
    return this.inFlight >= Math.max(1, this.lanes());
  }

  private schedule(): void {
    const flush = () => {
      this.timer = null;
      this.flush();
    };
    this.timer =
      this.o.maxWaitUs < 1_000 ? setImmediate(flush) : setTimeout(flush, this.o.maxWaitUs / 1_000);
  }

  private flush(): void {
    if (this.busy || !this.queue.length) return;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.inFlight++;
    this.stats.batches++;
    this.stats.rows += batch.length;
    this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, batch.length);
    this.run(batch.map((b) => b.input))
      .then(
        (out) => {
          if (out.length !== batch.length) {
            const e = new Error(`batch of ${batch.length} rows answered ${out.length}`);
            batch.forEach((b) => b.reject(e));
          } else batch.forEach((b, i) => b.resolve(out[i]));
        },
        (e: unknown) => batch.forEach((b) => b.reject(e)),
      )
      .finally(() => {
        this.inFlight--;
        // Whatever arrived meanwhile goes at once (it has already waited a whole batch).
        if (this.queue.length) this.flush();
      });
    // Another lane free and rows still waiting (more than one batch arrived at once).
    if (this.queue.length >= this.o.maxBatch) this.flush();
    else if (this.queue.length && !this.timer && !this.busy) this.schedule();
  }
}
