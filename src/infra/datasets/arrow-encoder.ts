import {
  Bool,
  Field,
  Float64,
  Int32,
  List,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type DataType,
  type Vector,
} from 'apache-arrow';
import { type DatasetEncoder, type EncodedColumn } from '../../domain/features/dataset';
import { FeatureType } from '../../domain/features/feature-definition';
import { nullableVector } from './arrow-vectors';
import { writeParquet } from './parquet';

/** Dataset snapshots as Arrow IPC files: columnar, typed, readable by pandas/polars/DuckDB. */
export class ArrowDatasetEncoder implements DatasetEncoder {
  readonly format = 'arrow';

  encode(columns: readonly EncodedColumn[]): Uint8Array {
    const fields: Field[] = [];
    const vectors: Record<string, Vector> = {};
    for (const c of columns) {
      const type = arrowType(c.type);
      fields.push(new Field(c.name, type, true));
      vectors[c.name] = Array.isArray(c.values)
        ? vectorFromArray(c.values as unknown[], type)
        : c.values.numeric
          ? numericVector(c.values, type)
          : vectorFromArray(c.values.values, type);
    }
    const table = new Table(new Schema(fields), vectors);
    return tableToIPC(table, 'file');
  }

  /** The same table as Parquet, column for column (the download for any reader). */
  toParquet(snapshot: Uint8Array): Promise<Uint8Array> {
    return writeParquet(tableFromIPC(snapshot));
  }
}

/** A Float64Array with a null mask as an Arrow vector, without a value-by-value builder. */
function numericVector(c: { values: Float64Array; nulls: Uint8Array }, type: DataType): Vector {
  const data = type instanceof Int32 ? Int32Array.from(c.values) : c.values;
  return nullableVector(type, data, (i) => !c.nulls[i]);
}

function arrowType(t: EncodedColumn['type']): DataType {
  switch (t) {
    case 'STRING_KEY':
    case FeatureType.STRING:
      return new Utf8();
    case 'TIMESTAMP':
      return new TimestampMillisecond();
    case FeatureType.INT:
      return new Int32();
    case FeatureType.FLOAT:
      return new Float64();
    case FeatureType.BOOL:
      return new Bool();
    case FeatureType.FLOAT_LIST:
      return new List(new Field('item', new Float64(), true));
  }
}
