/**
 * Coalesces concurrent single-row calls into one batched call. A batch leaves when it holds
 * `maxBatch` rows, or `maxWaitUs` after its first row, or — while a batch is running — as
 * soon as that batch returns (one batch in flight per runner: arrivals meanwhile wait and go
 * together). Each caller gets its own row of the batch's result.
 */
export interface BatcherOptions {
  maxBatch: number;
  maxWaitUs: number;
}

export class MicroBatcher<I, O> {
  private queue: { input: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private running = false;
  /** Batches run and rows served, for metrics and tests. */
  readonly stats = { batches: 0, rows: 0, maxBatchSeen: 0 };

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    private readonly o: BatcherOptions,
  ) {}

  submit(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      if (this.queue.length >= this.o.maxBatch) this.flush();
      else if (!this.timer && !this.running) this.schedule();
    });
  }

  /** Rows waiting (for the autoscaler's queue depth). */
  get depth(): number {
    return this.queue.length;
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
    if (this.running || !this.queue.length) return;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.running = true;
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
        this.running = false;
        // Whatever arrived meanwhile goes at once (it has already waited a whole batch).
        if (this.queue.length) this.flush();
      });
  }
}
