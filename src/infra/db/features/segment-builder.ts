import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  eventLayout,
  type FeatureValue,
  type FeatureViewSchema,
} from '../../../domain/features/feature-definition';
import { type FeatureEvent } from '../../../domain/features/point-in-time';
import {
  bucketOf,
  decodeSegment,
  encodeSegment,
  entityRanges,
  SegmentSeries,
  sortBucketRows,
} from './segments';

/** A row of the append log as the page query returns it, `fields` still JSON text. */
export interface LogRow {
  k: string;
  e: string;
  s: number;
  ts: number;
  cts: number;
  f: string | Record<string, FeatureValue>;
}

/** A log row as an event, its values in the layout's source order. */
export function logRowEvent(
  r: LogRow,
  sources: readonly string[],
): { entityKey: string; seq: number; event: FeatureEvent } {
  const f = (typeof r.f === 'string' ? JSON.parse(r.f) : r.f) as Record<string, FeatureValue>;
  return {
    entityKey: r.k,
    seq: r.s,
    event: {
      eventId: r.e,
      eventTs: Math.round(r.ts),
      createdTs: Math.round(r.cts),
      values: sources.map((x) => f[x] ?? null),
    },
  };
}

type Request =
  | { kind: 'add'; rows: LogRow[] }
  | { kind: 'encode'; id: number; bucket: number; old: Uint8Array | null };
type Reply = { id: number; bytes: Uint8Array; rows: number } | { id: number; error: string };

/**
 * Writes a compaction's segments on a thread of its own (docs/adr/0020). The api's thread
 * only reads the log in short pages and hands each page over as it comes; the worker holds
 * the backlog (up to 2M rows: its garbage collections pause the worker, not the requests),
 * merges each bucket with its old segment, sorts and encodes it, and hands the bytes back.
 */
export class SegmentBuilder {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (r: { bytes: Uint8Array; rows: number }) => void; reject: (e: Error) => void }
  >();
  private readonly touched = new Set<number>();
  private nextId = 0;
  private failure: Error | null = null;

  constructor(schema: FeatureViewSchema) {
    this.worker = new Worker(workerScript(), { workerData: { schema } });
    this.worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new Error(`segment worker: ${m.error}`));
      else p.resolve(m);
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`segment worker exited (${code})`)));
  }

  /** Hands a page of log rows over (copied to the worker; nothing waits). */
  add(rows: LogRow[]): void {
    if (this.failure) throw this.failure;
    for (const r of rows) this.touched.add(bucketOf(r.k));
    this.worker.postMessage({ kind: 'add', rows } satisfies Request);
  }

  /** The buckets the rows handed over fall in. */
  buckets(): number[] {
    return [...this.touched];
  }

  /** The bucket's new segment: its old one's rows (if any) and the new ones, in order. */
  encode(bucket: number, old: Uint8Array | null): Promise<{ bytes: Uint8Array; rows: number }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // The old segment's bytes are copied (a memcpy): they may share a buffer with others.
      this.worker.postMessage({ kind: 'encode', id, bucket, old } satisfies Request);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/**
 * The worker's side: holds the rows by bucket and answers `encode` requests. Runs in the
 * worker thread (`segment-worker.ts` calls it).
 */
export function serveSegmentWorker(
  schema: FeatureViewSchema,
  port: {
    on(e: 'message', f: (m: Request) => void): void;
    postMessage(m: unknown, t?: ArrayBuffer[]): void;
  },
): void {
  const { sources } = eventLayout(schema);
  const byBucket = new Map<number, { entityKey: string; event: FeatureEvent }[]>();
  port.on('message', (m) => {
    if (m.kind === 'add') {
      for (const raw of m.rows) {
        const r = logRowEvent(raw, sources);
        const b = bucketOf(r.entityKey);
        const list = byBucket.get(b);
        const row = { entityKey: r.entityKey, event: r.event };
        if (list) list.push(row);
        else byBucket.set(b, [row]);
      }
      return;
    }
    try {
      const rows = byBucket.get(m.bucket) ?? [];
      byBucket.delete(m.bucket);
      const kept = m.old ? segmentEvents(schema, m.old, sources.length) : [];
      const sorted = sortBucketRows(kept.length ? [...kept, ...rows] : rows);
      const bytes = encodeSegment(schema, sorted);
      port.postMessage({ id: m.id, bytes, rows: sorted.length } satisfies Reply, [
        bytes.buffer as ArrayBuffer,
      ]);
    } catch (e) {
      port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
}

/** A decoded segment's rows as events, in its order. */
export function segmentEvents(
  schema: FeatureViewSchema,
  bytes: Uint8Array,
  positions: number,
): { entityKey: string; event: FeatureEvent }[] {
  const decoded = decodeSegment(schema, bytes);
  const out: { entityKey: string; event: FeatureEvent }[] = [];
  for (const [entityKey, [lo, hi]] of entityRanges(decoded))
    for (const event of new SegmentSeries(decoded, lo, hi).events(positions))
      out.push({ entityKey, event });
  return out;
}

/**
 * The compiled worker script. Under `tsc` output it sits next to this file; when this file
 * runs from source (jest), the build's copy is used (`npm run build` first), as for the
 * embedded PGlite's server script.
 */
function workerScript(): string {
  const beside = path.join(__dirname, 'segment-worker.js');
  if (fs.existsSync(beside)) return beside;
  const built = path.resolve(
    __dirname,
    '..',
    '..',
    '..',
    '..',
    'dist',
    'src',
    'infra',
    'db',
    'features',
  );
  const script = path.join(built, 'segment-worker.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  return script;
}
