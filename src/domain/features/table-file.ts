import { InvalidInputError } from '../shared/domain-error';
import { FeatureErrorCode } from './feature-errors';

/** Files of rows read from the artifact store: backfills of history, spines of datasets. */
export enum TableFileFormat {
  PARQUET = 'PARQUET',
  CSV = 'CSV',
  ARROW = 'ARROW',
}

export interface TableFile {
  artifactKey: string;
  /** null: from the key's extension (.parquet, .csv, .arrow / .feather / .ipc). */
  format: TableFileFormat | null;
}

/**
 * One column. Values are numbers (timestamps as epoch ms), strings, booleans or null; a CSV
 * column is all strings (empty: null), which readers convert as the column's use requires.
 */
export interface TableColumn {
  get(i: number): unknown;
  /**
   * Where the reader found few distinct values (entity keys): them, and each row's index into
   * them, for a caller that groups rows by value without comparing millions of strings.
   */
  readonly distinct?: { readonly values: readonly unknown[]; readonly codes: Int32Array };
}

export interface TableColumns {
  readonly length: number;
  readonly names: string[];
  /** null when the file has no such column. */
  column(name: string): TableColumn | null;
}

/** Port: reads a whole table file from the artifact store. */
export interface TableFileReader {
  read(file: TableFile): Promise<TableColumns>;
}

export function formatOf(file: TableFile): TableFileFormat {
  if (file.format) return file.format;
  const ext = /\.([a-z]+)$/i.exec(file.artifactKey)?.[1]?.toLowerCase();
  if (ext === 'parquet') return TableFileFormat.PARQUET;
  if (ext === 'csv') return TableFileFormat.CSV;
  if (ext === 'arrow' || ext === 'feather' || ext === 'ipc') return TableFileFormat.ARROW;
  throw new InvalidInputError(
    FeatureErrorCode.INVALID_TABLE_FILE,
    `Cannot tell the format of "${file.artifactKey}" from its name: give format (PARQUET, CSV or ARROW)`,
    { artifactKey: file.artifactKey },
  );
}

/** The columns a use needs, or a BAD_USER_INPUT naming those missing. */
export function requireColumns(
  table: TableColumns,
  file: TableFile,
  names: readonly string[],
): TableColumn[] {
  const missing = names.filter((n) => !table.column(n));
  if (missing.length)
    throw new InvalidInputError(
      FeatureErrorCode.INVALID_TABLE_FILE,
      `${file.artifactKey} has no column ${missing.join(', ')} (it has ${table.names.join(', ')})`,
      { artifactKey: file.artifactKey, missing },
    );
  return names.map((n) => table.column(n) as TableColumn);
}

/** A time cell: epoch ms, or a string of epoch ms or ISO-8601; NaN when neither. */
export function timeOf(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  if (raw instanceof Date) return raw.getTime();
  if (typeof raw === 'string')
    return /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : Date.parse(raw);
  return NaN;
}
