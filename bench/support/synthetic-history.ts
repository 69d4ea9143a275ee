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

/** Entities `e<first>` … `e<first + entities - 1>`; each range its own deterministic stream. */
export function history(entities: number, perEntity: number, first = 0): History {
  let a = 42 + first;
  const r = () => {
    a = (Math.imul(a ^ (a >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    return a / 4294967296;
  };
  const cap = Math.ceil(entities * perEntity * 1.03);
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
  for (let e = 0; e < entities; e++) {
    const key = `e${first + e}`;
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
