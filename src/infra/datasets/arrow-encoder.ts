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
  tableToIPC,
  vectorFromArray,
  type DataType,
  type Vector,
} from 'apache-arrow';
import { type DatasetEncoder, type EncodedColumn } from '../../domain/features/dataset';
import { FeatureType } from '../../domain/features/feature-definition';

/** Dataset snapshots as Arrow IPC files: columnar, typed, readable by pandas/polars/DuckDB. */
export class ArrowDatasetEncoder implements DatasetEncoder {
  readonly format = 'arrow';

  encode(columns: readonly EncodedColumn[]): Uint8Array {
    const fields: Field[] = [];
    const vectors: Record<string, Vector> = {};
    for (const c of columns) {
      const type = arrowType(c.type);
      fields.push(new Field(c.name, type, true));
      vectors[c.name] = vectorFromArray(c.values as unknown[], type);
    }
    const table = new Table(new Schema(fields), vectors);
    return tableToIPC(table, 'file');
  }
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
