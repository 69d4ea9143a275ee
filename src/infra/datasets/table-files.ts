import { DataType, type Table, tableFromIPC, type Vector } from 'apache-arrow';
import { type ArtifactStore } from '../../domain/artifacts/artifact-store';
import { FeatureErrorCode } from '../../domain/features/feature-errors';
import {
  formatOf,
  type TableColumn,
  type TableColumns,
  type TableFile,
  TableFileFormat,
  type TableFileReader,
} from '../../domain/features/table-file';
import { InvalidInputError } from '../../domain/shared/domain-error';
import { isAscii } from 'node:buffer';
import { readParquet } from './parquet';

/**
 * Reads Parquet (parquet-wasm), Arrow IPC (file or stream) and CSV (RFC 4180, a header row)
 * files from the artifact store into columns. Arrow and Parquet columns stay columnar: a
 * numeric column is its typed array and a null mask, so millions of rows hold no boxed value.
 */
export class ArtifactTableReader implements TableFileReader {
  constructor(private readonly artifacts: ArtifactStore) {}

  async read(file: TableFile): Promise<TableColumns> {
    const format = formatOf(file);
    const bytes = await this.artifacts.getBytes(file.artifactKey);
    try {
      if (format === TableFileFormat.CSV) return csvColumns(Buffer.from(bytes).toString('utf8'));
      return arrowColumns(
        format === TableFileFormat.PARQUET ? await readParquet(bytes) : tableFromIPC(bytes),
      );
    } catch (e) {
      throw new InvalidInputError(
        FeatureErrorCode.INVALID_TABLE_FILE,
        `${file.artifactKey} is not a readable ${format} file: ${e instanceof Error ? e.message : String(e)}`,
        { artifactKey: file.artifactKey, format },
      );
    }
  }
}

function arrowColumns(table: Table): TableColumns {
  const names = table.schema.fields.map((f) => f.name);
  const cache = new Map<string, TableColumn>();
  return {
    length: table.numRows,
    names,
    column(name) {
      let c = cache.get(name);
      if (c) return c;
      const v = table.getChild(name);
      if (!v) return null;
      cache.set(name, (c = vectorColumn(v)));
      return c;
    },
  };
}

/** Milliseconds per unit of an Arrow timestamp (TimeUnit: SECOND, MILLISECOND, MICRO, NANO). */
const MS_PER_UNIT = [1000, 1, 1e-3, 1e-6];

/**
 * A column decoded once, into a typed array (numbers, timestamps as epoch ms) or an array
 * (strings), so the several reads a row gets cost an array access each.
 */
function vectorColumn(v: Vector): TableColumn {
  const t = v.type as DataType;
  const valid = validity(v);
  const numbers = (values: ArrayLike<number>): TableColumn => ({
    get: (i) => (valid && !valid[i] ? null : values[i]),
  });
  if (DataType.isFloat(t) || (DataType.isInt(t) && t.bitWidth <= 32))
    return numbers(v.toArray() as ArrayLike<number>);
  if (DataType.isTimestamp(t) || (DataType.isInt(t) && t.bitWidth === 64)) {
    const raw = v.toArray() as BigInt64Array | BigUint64Array;
    const factor = DataType.isTimestamp(t) ? MS_PER_UNIT[t.unit] : 1;
    const ms = new Float64Array(raw.length);
    for (let i = 0; i < raw.length; i++) ms[i] = Number(raw[i]) * factor;
    return numbers(ms);
  }
  const get = textColumn(v) ?? ((i: number) => cell(v.get(i)));
  return repeatedValues(v.length, get) ?? { get };
}

/**
 * A UTF-8 column read fast: each chunk whose bytes are all ASCII is decoded once into one
 * string, and a cell is a substring of it (the same string Arrow's decoder would give); other
 * chunks are read through Arrow. Null when the column is not UTF-8.
 */
function textColumn(v: Vector): ((i: number) => unknown) | null {
  if (!DataType.isUtf8(v.type as DataType)) return null;
  const chunks = v.data.map((d) => {
    const offsets = d.valueOffsets as Int32Array;
    const base = offsets[0];
    const bytes = Buffer.from(
      d.values.buffer,
      d.values.byteOffset + base,
      offsets[d.length] - base,
    );
    const ascii = d.offset === 0 && isAscii(bytes);
    return { d, offsets, base, text: ascii ? bytes.toString('latin1') : null };
  });
  const starts = new Int32Array(chunks.length + 1);
  chunks.forEach((c, k) => (starts[k + 1] = starts[k] + c.d.length));
  let at = 0;
  return (i) => {
    // Rows are mostly read in order: the chunk of the previous read first.
    if (i < starts[at] || i >= starts[at + 1]) {
      let lo = 0;
      let hi = chunks.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= i) lo = mid;
        else hi = mid - 1;
      }
      at = lo;
    }
    const c = chunks[at];
    const j = i - starts[at];
    if (c.text === null) return cell(v.get(i));
    if (c.d.nullCount > 0 && !c.d.getValid(j)) return null;
    return c.text.substring(c.offsets[j] - c.base, c.offsets[j + 1] - c.base);
  };
}

function cell(x: unknown): unknown {
  return typeof x === 'bigint' ? Number(x) : (x ?? null);
}

/**
 * A column of few distinct values (entity keys) decoded once into shared values: a read is an
 * array access, and millions of rows hold one string per distinct value. A column of mostly
 * distinct values (event ids) stays in Arrow and is decoded per read instead: holding millions
 * of strings would cost more in garbage collection than decoding them again.
 */
function repeatedValues(length: number, get: (i: number) => unknown): TableColumn | null {
  const limit = Math.max(65_536, length / 16);
  const codeOf = new Map<unknown, number>();
  const values: unknown[] = [];
  const codes = new Int32Array(length);
  for (let i = 0; i < length; i++) {
    const x = get(i);
    let code = codeOf.get(x);
    if (code === undefined) {
      if (values.length >= limit) return null;
      codeOf.set(x, (code = values.length));
      values.push(x);
    }
    codes[i] = code;
  }
  return { get: (i) => values[codes[i]], distinct: { values, codes } };
}

/** 1 where the vector holds a value, or null when it holds no null at all. */
function validity(v: Vector): Uint8Array | null {
  if (v.nullCount === 0) return null;
  const out = new Uint8Array(v.length);
  let at = 0;
  for (const d of v.data) {
    for (let i = 0; i < d.length; i++) out[at + i] = d.getValid(i) ? 1 : 0;
    at += d.length;
  }
  return out;
}

/** RFC 4180: quoted fields may hold commas, quotes ("") and line breaks. Empty cells are null. */
function csvColumns(text: string): TableColumns {
  const rows = parseCsv(text);
  const names = rows.shift() ?? [];
  const cols = new Map(
    names.map((n, j) => [
      n,
      { get: (i: number) => (rows[i][j] === undefined || rows[i][j] === '' ? null : rows[i][j]) },
    ]),
  );
  return { length: rows.length, names, column: (name) => cols.get(name) ?? null };
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
