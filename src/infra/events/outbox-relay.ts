import { failpoint } from '../../domain/shared/failpoints';
import { type DataSource } from 'typeorm';
import { returnedRows } from '../db/returned-rows';
import { type Envelope } from './outbox-event-bus';
import { type RedisEventBus } from './redis-event-bus';

const BATCH = 500;
/** Published events are kept this long for subscribers resuming from a cursor. */
const RETENTION_MS = 24 * 3_600_000;

export interface RelayPass {
  /** Events sent to Redis in this pass. */
  published: number;
  /** Milliseconds from commit to publication, for each of them. */
  delaysMs: number[];
}

/**
 * Moves committed events from the outbox to Redis, in one order (docs/adr/0027). Runs on one
 * process at a time (lease `outbox-relay`). Each pass first publishes again what a relay
 * that died had numbered but not marked published (subscribers drop the repeats by seq),
 * then numbers new events in commit-visible id order, publishes them, and marks them. A
 * Redis that is down fails the pass; the events wait, and nothing upstream notices.
 */
export class OutboxRelay {
  constructor(
    private readonly ds: DataSource,
    private readonly live: RedisEventBus,
  ) {}

  async pass(): Promise<RelayPass> {
    const out: RelayPass = { published: 0, delaysMs: [] };
    for (;;) {
      const pending = await this.unpublished();
      const rows = pending.length ? pending : await this.number();
      if (!rows.length) break;
      for (const r of rows)
        await this.live.publish<Envelope>(r.topic, { s: Number(r.seq), p: r.payload });
      failpoint('outbox-relay:published');
      await this.ds.query(
        `UPDATE outbox SET published_at = clock_timestamp() WHERE seq = ANY($1::bigint[])`,
        [rows.map((r) => r.seq)],
      );
      const now = Date.now();
      for (const r of rows) out.delaysMs.push(now - new Date(r.created_at).getTime());
      out.published += rows.length;
      if (rows.length < BATCH) break;
    }
    return out;
  }

  /** Drops published events older than the retention, a batch at a time. */
  async prune(): Promise<number> {
    const res: unknown = await this.ds.query(
      `DELETE FROM outbox WHERE id IN (
         SELECT id FROM outbox WHERE published_at < clock_timestamp() - $1 * interval '1 millisecond'
         ORDER BY id LIMIT 5000)
       RETURNING id`,
      [RETENTION_MS],
    );
    return returnedRows(res).length;
  }

  private unpublished(): Promise<Row[]> {
    return this.ds.query(
      `SELECT seq, topic, payload, created_at FROM outbox
       WHERE seq IS NOT NULL AND published_at IS NULL ORDER BY seq LIMIT ${BATCH}`,
    );
  }

  /** Numbers the oldest unnumbered events, in id order, in one statement. */
  private async number(): Promise<Row[]> {
    const res: unknown = await this.ds.query(
      `WITH next AS (
         SELECT id FROM outbox WHERE seq IS NULL ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED
       ), numbered AS (
         SELECT id, nextval('outbox_seq') AS seq FROM (SELECT id FROM next ORDER BY id) o
       )
       UPDATE outbox SET seq = numbered.seq FROM numbered WHERE outbox.id = numbered.id
       RETURNING outbox.seq, outbox.topic, outbox.payload, outbox.created_at`,
    );
    return returnedRows<Row>(res).sort((a, b) => Number(a.seq) - Number(b.seq));
  }
}

interface Row {
  seq: string;
  topic: string;
  payload: unknown;
  created_at: Date;
}
