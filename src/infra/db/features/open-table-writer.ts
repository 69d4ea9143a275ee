import {
  Bool,
  Field,
  Float64,
  List,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
  type DataType,
  type Vector,
} from 'apache-arrow';
import {
  eventLayout,
  FeatureType,
  type FeatureViewSchema,
} from '../../../domain/features/feature-definition';
import { openTableSourceColumns } from '../../../domain/features/open-table';
import { nullableVector } from '../../datasets/arrow-vectors';
import { writeParquet } from '../../datasets/parquet';
import { type SegmentRows } from './segments';

/** Written into each file's key-value metadata: the table's format version. */
export const OPEN_TABLE_VERSION = '1';

/**
 * One bucket segment's rows as an open-table Parquet file (domain/features/open-table.ts):
 * the same rows in the same order, keys and times as typed columns, each source as its
 * SQL-ish type. Runs on the segment worker. The same rows give the same bytes.
 */
export async function openTableParquet(
  schema: FeatureViewSchema,
  rows: SegmentRows,
): Promise<Uint8Array> {
  const n = rows.length;
  const { types } = eventLayout(schema);
  const ts = new TimestampMillisecond('UTC');
  const fields: Field[] = [
    new Field('entity_key', new Utf8(), false),
    new Field('event_id', new Utf8(), false),
    new Field('event_ts', ts, false),
    new Field('known_ts', ts, false),
    new Field('superseded_ts', ts, true),
  ];
  const vectors: Vector[] = [
    vectorFromArray(
      Array.from({ length: n }, (_, i) => rows.entities[rows.entity[i]]),
      new Utf8(),
    ),
    vectorFromArray(
      Array.from({ length: n }, (_, i) => rows.eventId(i)),
      new Utf8(),
    ),
    timestamps(rows.eventTs, ts),
    timestamps(rows.createdTs, ts),
    timestamps(rows.supersededTs, ts),
  ];
  openTableSourceColumns(schema.features).forEach((c, p) => {
    const type = arrowType(types[p]);
    fields.push(new Field(c.name, type, true));
    const numbers = rows.numbersAt(p);
    if (numbers && types[p] !== FeatureType.BOOL) vectors.push(withNulls(numbers, type));
    else
      vectors.push(
        vectorFromArray(
          Array.from({ length: n }, (_, i) => rows.value(i, p)),
          type,
        ),
      );
  });
  const table = new Table(
    new Schema(fields),
    Object.fromEntries(fields.map((f, k) => [f.name, vectors[k]])),
  );
  return writeParquet(table, { 'aether.open_table': OPEN_TABLE_VERSION });
}

function arrowType(t: FeatureType): DataType {
  switch (t) {
    case FeatureType.INT:
    case FeatureType.FLOAT:
      return new Float64();
    case FeatureType.BOOL:
      return new Bool();
    case FeatureType.STRING:
      return new Utf8();
    case FeatureType.FLOAT_LIST:
      return new List(new Field('item', new Float64(), true));
  }
}

/** Epoch milliseconds as a timestamp column; non-finite (a newest version's Infinity) as null. */
function timestamps(ms: Float64Array, type: TimestampMillisecond): Vector {
  const data = BigInt64Array.from(ms, (x) => (Number.isFinite(x) ? BigInt(Math.round(x)) : 0n));
  return nullableVector(type, data, (i) => Number.isFinite(ms[i]));
}

/** A Float64 column with NaN as null. */
function withNulls(values: Float64Array, type: DataType): Vector {
  return nullableVector(type, values, (i) => values[i] === values[i]);
}
