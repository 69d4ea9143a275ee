import { type RedisClient } from './redis-client';
import {
  type FeatureIngestionService,
  type IngestionReport,
} from '../../domain/features/feature-ingestion.service';
import { type FeatureRegistryService } from '../../domain/features/feature-registry.service';
import { type StreamLag } from '../../domain/features/feature-store.ports';
import { type IngestRecord } from '../../domain/features/validation';
import { type Logger } from '../observability/logger';

/**
 * Stream entries, one record each: `entityKey`, `eventTs` (epoch ms or ISO-8601),
 * `fields` (a JSON object) and optionally `eventId` (default: the stream entry id, which
 * makes redelivery of the same entry idempotent).
 */
export interface StreamRecordInput {
  entityKey: string;
  eventTs: number | string;
  fields: Record<string, unknown>;
  eventId?: string;
  /** When the value became known (epoch ms); for replays of history. */
  knownAt?: number;
}

export const CONSUMER_GROUP = 'aether-ingest';

/**
 * Entries per XREADGROUP. Under a light load a read returns what is there, so this only
 * bounds the batch when a backlog builds up; bigger batches drain it faster (the offline
 * append spreads them over several statements).
 */
export const DEFAULT_STREAM_BATCH = 5_000;

interface StreamBatch {
  key: string;
  entries: [id: string, kv: string[]][];
}

export interface IngestedBatch {
  source: string;
  reports: IngestionReport[];
  /** Stream entry ids; their first part is the append time in epoch ms. */
  entryIds: string[];
  /** When both stores had the batch (epoch ms): freshness = ingestedAt - append time. */
  ingestedAt: number;
}

/** Milliseconds from an entry's append to `at`. */
export function entryAgeMs(entryId: string, at: number): number {
  return at - Number(entryId.slice(0, entryId.indexOf('-')));
}

/**
 * Every source's stream shares one hash tag: a consumer reads all sources in one blocking
 * XREADGROUP, which on a Redis Cluster must stay in one slot (docs/adr/0029).
 */
export function streamKey(prefix: string, source: string): string {
  return `${prefix}{stream}:${source}`;
}

/** What a producer does: XADD each record to the source's stream (pipelined). */
export async function appendToStream(
  redis: RedisClient,
  prefix: string,
  source: string,
  records: readonly StreamRecordInput[],
): Promise<string[]> {
  const p = redis.pipeline();
  for (const r of records) p.xadd(streamKey(prefix, source), '*', ...streamEntryFields(r));
  return ((await p.exec()) ?? []).map(([err, id]) => {
    if (err) throw err;
    return id as string;
  });
}

/** A record as the field/value list of one stream entry: what `parseStreamEntry` reads. */
export function streamEntryFields(r: StreamRecordInput): string[] {
  const fields = [
    'entityKey',
    r.entityKey,
    'eventTs',
    String(r.eventTs),
    'fields',
    JSON.stringify(r.fields),
  ];
  if (r.eventId) fields.push('eventId', r.eventId);
  if (r.knownAt !== undefined) fields.push('knownAt', String(r.knownAt));
  return fields;
}

export function parseStreamEntry(id: string, kv: string[]): IngestRecord {
  const m: Record<string, string> = {};
  for (let i = 0; i + 1 < kv.length; i += 2) m[kv[i]] = kv[i + 1];
  const eventTs = parseTime(m.eventTs ?? '');
  let fields: Record<string, unknown> = {};
  let malformed: string | undefined;
  try {
    const parsed: unknown = JSON.parse(m.fields ?? '{}');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      fields = parsed as Record<string, unknown>;
    else malformed = 'fields must be a JSON object';
  } catch {
    malformed = 'fields is not valid JSON';
  }
  return {
    ...(m.knownAt !== undefined ? { knownAt: parseTime(m.knownAt) } : {}),
    entityKey: m.entityKey ?? '',
    eventId: m.eventId || id,
    eventTs,
    fields,
    ...(malformed ? { malformed } : {}),
  };
}

/** Epoch milliseconds or ISO-8601; NaN when neither (validation quarantines it). */
function parseTime(raw: string): number {
  return /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : Date.parse(raw);
}

export interface FeatureStreamOptions {
  consumer: string;
  batchSize?: number;
  blockMs?: number;
  /** How often the set of sources (streams) is re-read from the registry. */
  refreshMs?: number;
  /** Entries another consumer left unacknowledged this long are claimed (its process died). */
  claimIdleMs?: number;
}

/**
 * Consumes every source's stream with a consumer group. Entries are acknowledged only
 * after ingestion wrote both stores; entries left pending by a crash are read again
 * first (`0` before `>`), and ingestion is idempotent per (entity, event id).
 */
export class FeatureStreamConsumer {
  private running = false;
  private loop: Promise<void> | null = null;
  private sources: string[] = [];
  private sourcesAt = 0;
  private readonly known = new Set<string>();
  private claimedAt = 0;

  constructor(
    private readonly blocking: RedisClient,
    private readonly prefix: string,
    private readonly registry: FeatureRegistryService,
    private readonly ingestion: FeatureIngestionService,
    private readonly logger: Logger,
    private readonly opts: FeatureStreamOptions,
    private readonly onBatch: (batch: IngestedBatch) => void = () => undefined,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    // Interrupts a pending XREADGROUP BLOCK.
    this.blocking.disconnect();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    let backoff = 100;
    // Our own pending entries (a crash, a failed batch) are read again before new ones.
    let pendingFirst = true;
    let ahead: Promise<StreamBatch[]> | null = null;
    while (this.running) {
      try {
        await this.refreshSources();
        if (this.sources.length === 0) {
          await sleep(this.opts.refreshMs ?? 1_000);
          continue;
        }
        // Entries a dead consumer left behind become ours and are read as pending (with
        // whatever was read ahead, which is pending too and so is dropped here).
        if (await this.claimAbandoned()) {
          await ahead?.catch(() => undefined);
          ahead = null;
          pendingFirst = true;
        }
        let batches: StreamBatch[] = [];
        if (pendingFirst) {
          batches = await this.read('0', 0);
          pendingFirst = batches.length > 0;
        }
        if (!batches.length) {
          batches = (await ahead) ?? [];
          ahead = null;
        }
        if (!batches.length) batches = await this.read('>', this.opts.blockMs ?? 1_000);
        if (!batches.length) continue;
        // Read ahead while this batch is ingested: the next one is waiting when it is done.
        // Entries read ahead are only delivered, not acknowledged, so a crash loses nothing.
        if (!pendingFirst) ahead = this.read('>', 0);
        for (const b of batches) await this.ingest(b);
        backoff = 100;
      } catch (e) {
        if (!this.running) return;
        // What was read ahead stays pending: it is read again with the failed batch.
        await ahead?.catch(() => undefined);
        ahead = null;
        pendingFirst = true;
        this.logger.warn(
          { err: e instanceof Error ? e.message : e },
          'feature stream consumer error; retrying',
        );
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
    await ahead?.catch(() => undefined);
  }

  /** One XREADGROUP across all sources: `0` re-reads our pending entries, `>` new ones. */
  private async read(id: '0' | '>', blockMs: number): Promise<StreamBatch[]> {
    const keys = this.sources.map((s) => streamKey(this.prefix, s));
    const args: (string | number)[] = [
      'GROUP',
      CONSUMER_GROUP,
      this.opts.consumer,
      'COUNT',
      this.opts.batchSize ?? DEFAULT_STREAM_BATCH,
    ];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', ...keys, ...keys.map(() => id));
    const res = (await this.blocking.call('XREADGROUP', ...args)) as
      [string, [string, string[]][]][] | null;
    return (res ?? [])
      .filter(([, entries]) => entries.length > 0)
      .map(([key, entries]) => ({ key, entries }));
  }

  private async ingest({ key, entries }: StreamBatch): Promise<void> {
    const source = key.slice(streamKey(this.prefix, '').length);
    const records = entries.map(([entryId, kv]) => parseStreamEntry(entryId, kv ?? []));
    const versions = await this.registry.liveVersionsBySource(source);
    const reports = await this.ingestion.ingest(versions, records, source);
    const ingestedAt = Date.now();
    const entryIds = entries.map(([entryId]) => entryId);
    await this.blocking.xack(key, CONSUMER_GROUP, ...entryIds);
    this.onBatch({ source, reports, entryIds, ingestedAt });
  }

  /** Returns whether any entry was claimed. */
  private async claimAbandoned(): Promise<boolean> {
    const now = Date.now();
    const idle = this.opts.claimIdleMs ?? 30_000;
    if (now - this.claimedAt < Math.min(idle, 5_000)) return false;
    this.claimedAt = now;
    let claimed = false;
    for (const s of this.sources) {
      // XAUTOCLAIM moves idle entries of any consumer to us; the next `0` read processes them.
      const [, entries] = (await this.blocking.xautoclaim(
        streamKey(this.prefix, s),
        CONSUMER_GROUP,
        this.opts.consumer,
        idle,
        '0-0',
        'COUNT',
        this.opts.batchSize ?? DEFAULT_STREAM_BATCH,
      )) as [string, unknown[]];
      if (entries.length) claimed = true;
    }
    return claimed;
  }

  private async refreshSources(): Promise<void> {
    const now = Date.now();
    if (now - this.sourcesAt < (this.opts.refreshMs ?? 1_000) && this.sources.length) return;
    this.sourcesAt = now;
    this.sources = await this.registry.allSources();
    for (const s of this.sources) {
      if (this.known.has(s)) continue;
      try {
        // From the start of the stream: records produced before the view existed are ingested too.
        await this.blocking.xgroup(
          'CREATE',
          streamKey(this.prefix, s),
          CONSUMER_GROUP,
          '0',
          'MKSTREAM',
        );
      } catch (e) {
        if (!(e instanceof Error) || !e.message.includes('BUSYGROUP')) throw e;
      }
      this.known.add(s);
    }
  }
}

/** Lag per source from XINFO GROUPS (Redis 7: `lag` is entries not yet delivered to the group). */
export async function readStreamLag(
  client: RedisClient,
  prefix: string,
  sources: readonly string[],
): Promise<StreamLag[]> {
  const out: StreamLag[] = [];
  for (const source of sources) {
    let info: unknown[][] = [];
    try {
      info = (await client.xinfo('GROUPS', streamKey(prefix, source))) as unknown[][];
    } catch {
      // No stream yet: nothing produced, nothing behind.
    }
    const group = info.map(toMap).find((g) => g.name === CONSUMER_GROUP);
    out.push({
      source,
      lag: Number(group?.lag ?? 0),
      pending: Number(group?.pending ?? 0),
      lastDeliveredId: (group?.['last-delivered-id'] as string | undefined) ?? null,
    });
  }
  return out;
}

function toMap(flat: unknown[]): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) m[String(flat[i])] = flat[i + 1];
  return m;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
