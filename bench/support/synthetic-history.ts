import {
  Field,
  Float64,
  makeVector,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import { FeatureType, type FeatureSpec } from '../../src/domain/features/feature-definition';

/**
 * A synthetic feature history for the offline benchmarks: `perEntity` events per entity over
 * 90 days, 10 FLOAT fields in thousandths, about 2% of events corrected by a version learned
 * 1-60 s later. Columns as typed arrays, so tens of millions of rows fit.
 */
export const FIELDS = 10;
export const DAY = 86_400_000;
export const T0 = Date.parse('2026-01-01T00:00:00Z');

export interface History {
  n: number;
  entity: string[];
  id: string[];
  eventTs: Float64Array;
  knownAt: Float64Array;
  fields: Float64Array[];
}

/**
 * Entities `e0` … `e<entities - 1>`, or those of the numbers given; each set its own
 * deterministic stream.
 */
export function history(entities: number | readonly number[], perEntity: number): History {
  const ids = typeof entities === 'number' ? null : entities;
  const count = ids ? ids.length : (entities as number);
  let a = 42 + (ids?.[0] ?? 0);
  const r = () => {
    a = (Math.imul(a ^ (a >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    return a / 4294967296;
  };
  const cap = Math.ceil(count * perEntity * 1.03);
  const h: History = {
    n: 0,
    entity: new Array<string>(cap),
    id: new Array<string>(cap),
    eventTs: new Float64Array(cap),
    knownAt: new Float64Array(cap),
    fields: Array.from({ length: FIELDS }, () => new Float64Array(cap)),
  };
  const push = (e: string, id: string, ts: number, known: number) => {
    h.entity[h.n] = e;
    h.id[h.n] = id;
    h.eventTs[h.n] = ts;
    h.knownAt[h.n] = known;
    for (let f = 0; f < FIELDS; f++) h.fields[f][h.n] = Math.round(r() * 1e6) / 1e3;
    h.n++;
  };
  const span = 90 * DAY;
  for (let e = 0; e < count; e++) {
    const key = `e${ids ? ids[e] : e}`;
    for (let k = 0; k < perEntity; k++) {
      const ts = T0 + Math.floor(((k + r() * 0.9) * span) / perEntity / 1000) * 1000;
      push(key, `${key}-${k}`, ts, ts);
      // A correction of the same event, learned 1-60 s later.
      if (r() < 0.02 && h.n < cap)
        push(key, `${key}-${k}`, ts, ts + (1 + Math.floor(r() * 60)) * 1000);
    }
  }
  return h;
}

/** The history as an Arrow table with the backfill's columns. */
export function asTable(h: History): Table {
  const fields = [
    new Field('entity_key', new Utf8(), false),
    new Field('event_id', new Utf8(), false),
    new Field('event_ts', new TimestampMillisecond(), false),
    new Field('known_at', new TimestampMillisecond(), false),
    ...Array.from({ length: FIELDS }, (_, f) => new Field(`f${f}`, new Float64(), false)),
  ];
  return new Table(new Schema(fields), {
    entity_key: vectorFromArray(h.entity.slice(0, h.n), new Utf8()),
    event_id: vectorFromArray(h.id.slice(0, h.n), new Utf8()),
    event_ts: vectorFromArray(Array.from(h.eventTs.subarray(0, h.n)), new TimestampMillisecond()),
    known_at: vectorFromArray(Array.from(h.knownAt.subarray(0, h.n)), new TimestampMillisecond()),
    ...Object.fromEntries(h.fields.map((col, f) => [`f${f}`, makeVector(col.subarray(0, h.n))])),
  });
}

/** The history's fields as a view's features: `f0` … `f9`, FLOAT, as stored. */
export function floatFeatures(): FeatureSpec[] {
  return Array.from({ length: FIELDS }, (_, f) => ({
    name: `f${f}`,
    type: FeatureType.FLOAT,
    source: `f${f}`,
    transform: { kind: 'IDENTITY' as const },
    aggregation: null,
    validation: {},
  }));
}

/** A small, seeded generator (mulberry32) for the benchmarks' labels. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
