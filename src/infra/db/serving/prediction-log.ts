import os from 'node:os';
import { type DataSource } from 'typeorm';
import {
  type PredictionLog,
  type PredictionRecord,
  type ShadowComparison,
} from '../../../domain/serving/deployment';
import { type DeadLetterStore } from '../../../domain/shared/dead-letter';
import { returnedRows } from '../returned-rows';
import { isPoisonError } from '../storable-text';

const FLUSH_ROWS = 1_000;
const LITTLE_ENDIAN = os.endianness() === 'LE';
const FLUSH_MS = 100;
/** Past this many buffered rows, `append` waits for the writer (back-pressure). */
const MAX_BUFFERED = 100_000;

/**
 * The prediction log in Postgres, written by one background writer in multi-row INSERTs. A
 * write that fails because the database is away keeps its rows and is retried; a full
 * buffer makes callers wait. A write that fails because of what a row holds (a poison row)
 * is split in halves until the bad rows are found: they go to the dead-letter store (and
 * its listeners raise an alert), the rest is written, and nothing behind them waits.
 * Nothing is dropped, so `lost` stays 0 (it is counted so a reader can check).
 */
export class SqlPredictionLog implements PredictionLog {
  private buffer: PredictionRecord[] = [];
  private writing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly counts = { written: 0, lost: 0, failedFlushes: 0, deadLettered: 0 };
  private waiters: (() => void)[] = [];
  private readonly deadListeners: ((rows: PredictionRecord[], error: string) => void)[] = [];

  constructor(
    private readonly ds: DataSource,
    private readonly deadLetters: DeadLetterStore,
  ) {
    this.timer = setInterval(() => void this.flush().catch(() => undefined), FLUSH_MS);
    this.timer.unref();
  }

  async append(rows: PredictionRecord[]): Promise<void> {
    while (this.buffer.length >= MAX_BUFFERED) {
      void this.flush().catch(() => undefined);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    this.buffer.push(...rows);
    if (this.buffer.length >= FLUSH_ROWS) void this.flush().catch(() => undefined);
  }

  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (!this.buffer.length) return;
    const rows = this.buffer.splice(0, 5_000);
    this.writing = this.writeIsolating(rows)
      .then((written) => {
        this.counts.written += written;
      })
      .catch((e: unknown) => {
        this.counts.failedFlushes++;
        this.buffer.unshift(...rows); // kept, retried by the next flush
        throw e;
      })
      .finally(() => {
        this.writing = null;
        const w = this.waiters.splice(0);
        w.forEach((f) => f());
      });
    await this.writing;
    if (this.buffer.length) await this.flush();
  }

  stats(): {
    written: number;
    buffered: number;
    lost: number;
    failedFlushes: number;
    deadLettered: number;
  } {
    return { ...this.counts, buffered: this.buffer.length };
  }

  /** Called with the rows set aside and the database's reason, after they are stored. */
  onDeadLetters(listener: (rows: PredictionRecord[], error: string) => void): void {
    this.deadListeners.push(listener);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  async compareShadow(deploymentId: string, since: Date): Promise<ShadowComparison[]> {
    await this.flush();
    const rows: {
      shadow_version_id: string;
      pairs: number;
      mean_abs_diff: number;
      max_abs_diff: number;
      agreement: number;
    }[] = await this.ds.query(
      `SELECT s.model_version_id AS shadow_version_id, count(*)::int AS pairs,
              avg(abs(s.score - a.score)) AS mean_abs_diff, max(abs(s.score - a.score)) AS max_abs_diff,
              avg(CASE WHEN (s.score >= 0.5) = (a.score >= 0.5) THEN 1.0 ELSE 0.0 END)::float8 AS agreement
       FROM prediction_log s JOIN prediction_log a
         ON a.deployment_id = s.deployment_id AND a.request_key = s.request_key
        AND a.created_at = s.created_at AND a.entity_key IS NOT DISTINCT FROM s.entity_key
        AND a.role <> 'SHADOW'
       WHERE s.deployment_id = $1 AND s.role = 'SHADOW' AND s.created_at >= $2
       GROUP BY s.model_version_id`,
      [deploymentId, since],
    );
    return rows.map((r) => ({
      shadowVersionId: r.shadow_version_id,
      pairs: r.pairs,
      meanAbsDiff: Number(r.mean_abs_diff),
      maxAbsDiff: Number(r.max_abs_diff),
      agreement: Number(r.agreement),
    }));
  }

  async recordFeedback(
    by: { predictionId?: string; requestKey?: string },
    label: number,
    at: Date,
  ): Promise<number> {
    const res: unknown = by.predictionId
      ? await this.ds.query(
          `UPDATE prediction_log SET label = $2, label_at = $3 WHERE id = $1 RETURNING id`,
          [by.predictionId, label, at],
        )
      : await this.ds.query(
          `UPDATE prediction_log SET label = $2, label_at = $3 WHERE id = (
             SELECT id FROM prediction_log WHERE request_key = $1 AND role <> 'SHADOW'
             ORDER BY created_at DESC LIMIT 1) RETURNING id`,
          [by.requestKey, label, at],
        );
    return returnedRows(res).length;
  }

  /** Writes `rows`, dead-lettering poison ones; returns how many were written. */
  private async writeIsolating(rows: PredictionRecord[]): Promise<number> {
    try {
      await this.write(rows);
      return rows.length;
    } catch (e) {
      // The database away or busy: the whole batch is retried (the insert is idempotent).
      if (!isPoisonError(e)) throw e;
      if (rows.length > 1) {
        const mid = rows.length >> 1;
        return (
          (await this.writeIsolating(rows.slice(0, mid))) +
          (await this.writeIsolating(rows.slice(mid)))
        );
      }
      const error = e instanceof Error ? e.message : String(e);
      const payload = { ...rows[0], inputs: Array.from(rows[0].inputs, logged) };
      await this.deadLetters.put([{ source: 'prediction_log', error, payload }]);
      this.counts.deadLettered++;
      for (const l of this.deadListeners) l(rows, error);
      return 0;
    }
  }

  /**
   * One INSERT for the batch. The inputs travel as one binary parameter (every row's bytes
   * one after another, cut apart by offset and length in SQL): an array of bytea would be
   * sent as hex text that PostgreSQL parses back, four times the database's CPU on a
   * 500-feature row (bench/results/serving.json). Times travel as ms since 1970, exact (below
   * 2^53 µs), instead of dates the driver formats as text and PostgreSQL parses (ADR 0038).
   */
  private async write(rows: PredictionRecord[]): Promise<void> {
    const { bytes, offsets, lengths } = packInputs(rows.map((r) => r.inputs));
    await this.ds.query(
      `INSERT INTO prediction_log (id, deployment_id, model_version_id, role, request_key, entity_key, inputs_f32, score, latency_us, created_at)
       SELECT id, deployment_id, model_version_id, role, request_key, entity_key,
              substring($7::bytea FROM o + 1 FOR n), score, latency_us,
              timestamptz 'epoch' + created_at * interval '1 millisecond'
       FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $8::float8[], $9::int[], $10::float8[], $11::int[], $12::int[])
         AS t(id, deployment_id, model_version_id, role, request_key, entity_key, score, latency_us, created_at, o, n)
       ON CONFLICT (id) DO NOTHING`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.deploymentId),
        rows.map((r) => r.versionId),
        rows.map((r) => r.role),
        rows.map((r) => r.requestKey),
        rows.map((r) => r.entityKey),
        bytes,
        rows.map((r) => r.score),
        rows.map((r) => r.latencyUs),
        rows.map((r) => r.at.getTime()),
        offsets,
        lengths,
      ],
    );
  }
}

/**
 * Rows' inputs as the log stores them (ADR 0037): float32, big-endian as PostgreSQL's
 * `float4send` writes them, so `prediction_inputs(inputs_f32)` reads them in SQL; all rows in
 * one buffer, each at its offset. Copies and one byte swap: about a µs a 500-feature row.
 */
export function packInputs(rows: readonly Float32Array[]): {
  bytes: Buffer;
  offsets: number[];
  lengths: number[];
} {
  const offsets: number[] = [];
  const lengths: number[] = [];
  let size = 0;
  for (const x of rows) {
    offsets.push(size);
    lengths.push(x.byteLength);
    size += x.byteLength;
  }
  const bytes = Buffer.allocUnsafe(size);
  rows.forEach((x, i) =>
    bytes.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), offsets[i]),
  );
  if (LITTLE_ENDIAN) bytes.swap32();
  return { bytes, offsets, lengths };
}

/** Stored inputs back as numbers: null where the model was given NaN (no value). */
export function readInputs(b: Buffer): (number | null)[] {
  const out = new Array<number | null>(b.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = logged(b.readFloatBE(i * 4));
  return out;
}

/** An input as the log gives it back: NaN, the model's "no value", as null. */
function logged(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}
