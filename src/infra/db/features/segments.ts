import {
  Field,
  Float64,
  Int32,
  Schema,
  Table,
  Utf8,
  makeData,
  makeVector,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type Vector,
} from 'apache-arrow';
import {
  eventLayout,
  FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
} from '../../../domain/features/feature-definition';
import {
  compareEvents,
  type EventSeries,
  type FeatureEvent,
  supersession,
} from '../../../domain/features/point-in-time';

/**
 * Columnar segments of a view version's offline history: one Arrow IPC file per entity
 * bucket, rows (every version of every event) sorted by (entity, eventTs, createdTs, eventId)
 * so an entity's history is one contiguous slice. Numeric and boolean sources are Float64
 * columns (null as NaN: validation admits only finite numbers), others JSON text;
 * `superseded_ts` is when the next version of the row's event became known (Infinity for the
 * newest). Point-in-time reads evaluate straight on these columns (`SegmentSeries`), without
 * building an object per event. Format 1 (before corrections were kept) had one version per
 * event and no `superseded_ts`: it still reads, every row its event's newest version.
 */
export const SEGMENT_FORMAT = '2';

/** Entity buckets per view version: each is one segment, rewritten when its entities change. */
export const SEGMENT_BUCKETS = 16;

/** FNV-1a of the entity key: a stable bucket, independent of the database's hash functions. */
export function bucketOf(entityKey: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < entityKey.length; i++) {
    h ^= entityKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % SEGMENT_BUCKETS;
}

/**
 * A bucket's rows in segment order: by entity (UTF-16 code units), then `compareEvents`.
 * A counting sort by entity, then each entity's few rows sorted on their own (usually already
 * in order): a comparison sort of millions of rows would cost seconds.
 */
export function sortBucketRows<T extends { entityKey: string; event: FeatureEvent }>(
  rows: readonly T[],
): T[] {
  const keys = [...new Set(rows.map((r) => r.entityKey))].sort();
  const rank = new Map(keys.map((k, i) => [k, i]));
  const start = new Int32Array(keys.length + 1);
  const ranks = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    ranks[i] = rank.get(rows[i].entityKey) as number;
    start[ranks[i] + 1]++;
  }
  for (let k = 0; k < keys.length; k++) start[k + 1] += start[k];
  const out = new Array<T>(rows.length);
  const cursor = start.slice(0, keys.length);
  for (let i = 0; i < rows.length; i++) out[cursor[ranks[i]]++] = rows[i];
  for (let k = 0; k < keys.length; k++) {
    const lo = start[k];
    const hi = start[k + 1];
    let sorted = true;
    for (let i = lo + 1; i < hi && sorted; i++)
      sorted = compareEvents(out[i - 1].event, out[i].event) <= 0;
    if (sorted) continue;
    const part = out.slice(lo, hi).sort((a, b) => compareEvents(a.event, b.event));
    for (let i = 0; i < part.length; i++) out[lo + i] = part[i];
  }
  return out;
}

interface SourceColumn {
  numeric: boolean;
  bool: boolean;
}

function sourceColumns(schema: FeatureViewSchema): SourceColumn[] {
  return eventLayout(schema).sources.map((s) => {
    const type = schema.features.find((f) => f.source === s)?.type ?? FeatureType.STRING;
    const numeric =
      type === FeatureType.FLOAT || type === FeatureType.INT || type === FeatureType.BOOL;
    return { numeric, bool: type === FeatureType.BOOL };
  });
}

/**
 * Strings as an Arrow Utf8 vector, written straight into one buffer and its offsets: the
 * generic builder costs several times more on a million ids.
 */
function utf8Vector(strings: readonly string[]): Vector {
  const offsets = new Int32Array(strings.length + 1);
  let bytes = 0;
  for (let i = 0; i < strings.length; i++) {
    bytes += Buffer.byteLength(strings[i], 'utf8');
    offsets[i + 1] = bytes;
  }
  const data = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < strings.length; i++) data.write(strings[i], offsets[i], 'utf8');
  return makeVector(
    makeData({
      type: new Utf8(),
      length: strings.length,
      nullCount: 0,
      valueOffsets: offsets,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    }),
  );
}

/** Rows of one bucket in columns; `entity` holds indexes into `entities`. */
export class SegmentRows {
  constructor(
    readonly entities: string[],
    readonly entity: Int32Array,
    readonly eventTs: Float64Array,
    readonly createdTs: Float64Array,
    readonly supersededTs: Float64Array,
    private readonly ids: Vector,
    /** Per source position: its Float64 column, or null for a JSON text column. */
    private readonly numbers: (Float64Array | null)[],
    private readonly bools: boolean[],
    private readonly texts: (Vector | null)[],
  ) {}

  get length(): number {
    return this.eventTs.length;
  }

  eventId(i: number): string {
    return this.ids.get(i) as string;
  }

  value(i: number, p: number): FeatureValue {
    const col = this.numbers[p];
    if (col !== null) {
      const v = col[i];
      if (v !== v) return null; // NaN: null
      return this.bools[p] ? v === 1 : v;
    }
    const raw = (this.texts[p] as Vector).get(i) as string | null;
    return raw === null ? null : (JSON.parse(raw) as FeatureValue);
  }
}

/** Encodes events (already sorted by entity, then compareEvents) of one bucket. */
export function encodeSegment(
  schema: FeatureViewSchema,
  rows: readonly { entityKey: string; event: FeatureEvent }[],
): Uint8Array {
  const cols = sourceColumns(schema);
  const n = rows.length;
  const entities: string[] = [];
  const entity = new Int32Array(n);
  const eventTs = new Float64Array(n);
  const createdTs = new Float64Array(n);
  const supersededTs = new Float64Array(n).fill(Infinity);
  // Per entity, when each version was superseded by its event's next: only entities with an
  // event that has several versions need the work.
  const seen = new Set<string>();
  let start = 0;
  let versions = false;
  for (let i = 0; i <= n; i++) {
    if (i === n || (i > 0 && rows[i].entityKey !== rows[i - 1].entityKey)) {
      if (versions) supersededTs.set(supersession(rows.slice(start, i).map((r) => r.event)), start);
      seen.clear();
      start = i;
      versions = false;
    }
    if (i === n) break;
    const id = rows[i].event.eventId;
    if (seen.has(id)) versions = true;
    else seen.add(id);
  }
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    if (entities[entities.length - 1] !== r.entityKey) entities.push(r.entityKey);
    entity[i] = entities.length - 1;
    eventTs[i] = r.event.eventTs;
    createdTs[i] = r.event.createdTs;
  }
  const fields = [
    new Field('entity', new Int32(), false),
    new Field('event_id', new Utf8(), false),
    new Field('event_ts', new Float64(), false),
    new Field('created_ts', new Float64(), false),
    new Field('superseded_ts', new Float64(), false),
  ];
  const vectors: Record<string, Vector> = {
    entity: makeVector(entity),
    event_id: utf8Vector(rows.map((r) => r.event.eventId)),
    event_ts: makeVector(eventTs),
    created_ts: makeVector(createdTs),
    superseded_ts: makeVector(supersededTs),
  };
  cols.forEach((c, p) => {
    const name = `s${p}`;
    if (c.numeric) {
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = rows[i].event.values[p];
        values[i] = v === null || v === undefined ? NaN : Number(v);
      }
      fields.push(new Field(name, new Float64(), false));
      vectors[name] = makeVector(values);
    } else {
      fields.push(new Field(name, new Utf8(), true));
      vectors[name] = vectorFromArray(
        rows.map((r) => {
          const v = r.event.values[p];
          return v === null || v === undefined ? null : JSON.stringify(v);
        }),
        new Utf8(),
      );
    }
  });
  const metadata = new Map([
    ['aether.segment', SEGMENT_FORMAT],
    ['aether.entities', JSON.stringify(entities)],
  ]);
  return tableToIPC(new Table(new Schema(fields, metadata), vectors), 'file');
}

export function decodeSegment(schema: FeatureViewSchema, bytes: Uint8Array): SegmentRows {
  const table = tableFromIPC(bytes);
  const format = table.schema.metadata.get('aether.segment');
  if (format !== SEGMENT_FORMAT && format !== '1')
    throw new Error(`offline segment in unknown format ${format}`);
  const entities = JSON.parse(table.schema.metadata.get('aether.entities') ?? '[]') as string[];
  const column = (name: string): Vector => {
    const c = table.getChild(name);
    if (!c) throw new Error(`offline segment has no column ${name}`);
    return c;
  };
  const cols = sourceColumns(schema);
  return new SegmentRows(
    entities,
    column('entity').toArray() as Int32Array,
    column('event_ts').toArray() as Float64Array,
    column('created_ts').toArray() as Float64Array,
    format === '1'
      ? new Float64Array(table.numRows).fill(Infinity)
      : (column('superseded_ts').toArray() as Float64Array),
    column('event_id'),
    cols.map((c, p) => (c.numeric ? (column(`s${p}`).toArray() as Float64Array) : null)),
    cols.map((c) => c.bool),
    cols.map((c, p) => (c.numeric ? null : column(`s${p}`))),
  );
}

/** Where each entity's rows start and end in a decoded segment. */
export function entityRanges(rows: SegmentRows): Map<string, [number, number]> {
  const ranges = new Map<string, [number, number]>();
  let start = 0;
  for (let i = 1; i <= rows.length; i++) {
    if (i === rows.length || rows.entity[i] !== rows.entity[start]) {
      ranges.set(rows.entities[rows.entity[start]], [start, i]);
      start = i;
    }
  }
  return ranges;
}

/** One entity's slice of a segment, evaluated in place. */
export class SegmentSeries implements EventSeries {
  readonly length: number;

  constructor(
    private readonly rows: SegmentRows,
    private readonly lo: number,
    hi: number,
  ) {
    this.length = hi - lo;
  }

  eventTs(i: number): number {
    return this.rows.eventTs[this.lo + i];
  }

  createdTs(i: number): number {
    return this.rows.createdTs[this.lo + i];
  }

  supersededTs(i: number): number {
    return this.rows.supersededTs[this.lo + i];
  }

  value(i: number, position: number): FeatureValue {
    return this.rows.value(this.lo + i, position);
  }

  /** The slice as event objects: for merging with rows appended since the compaction. */
  events(positions: number): FeatureEvent[] {
    const out: FeatureEvent[] = [];
    for (let i = 0; i < this.length; i++) {
      const at = this.lo + i;
      out.push({
        eventId: this.rows.eventId(at),
        eventTs: this.rows.eventTs[at],
        createdTs: this.rows.createdTs[at],
        values: Array.from({ length: positions }, (_, p) => this.rows.value(at, p)),
      });
    }
    return out;
  }
}
