import { type Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { yieldToEventLoop } from '../../domain/shared/time-slice';

/**
 * Parquet through parquet-wasm (arrow-rs compiled to WebAssembly, docs/adr/0024): an Arrow
 * table in, Parquet bytes out, and back, with Arrow's types kept (UTC timestamps, nullable
 * doubles, UTF-8), so pandas, DuckDB and hyparquet read what it writes as they would a file
 * written by pyarrow. Any Arrow table can be written: snapshots now, open history tables later.
 * The 5 MB module is compiled on first use, not when the api starts.
 */
type ParquetWasm = typeof import('parquet-wasm/node');

let loaded: Promise<ParquetWasm> | null = null;

function parquetWasm(): Promise<ParquetWasm> {
  loaded ??= import('parquet-wasm/node').then(
    (m) => ((m as { default?: ParquetWasm }).default ?? m) as ParquetWasm,
  );
  return loaded;
}

/** Rows per row group: a reader that wants a few columns of a few groups reads little. */
const ROW_GROUP_ROWS = 1 << 20;

/**
 * The table as a Parquet file (Snappy-compressed, statistics on). The same table always
 * gives the same bytes: the writer records no time or random identifier.
 */
export async function writeParquet(
  table: Table,
  metadata: Record<string, string> = {},
): Promise<Uint8Array> {
  const pw = await parquetWasm();
  let props = new pw.WriterPropertiesBuilder()
    .setCompression(pw.Compression.SNAPPY)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .setCreatedBy('aether');
  if (Object.keys(metadata).length)
    props = props.setKeyValueMetadata(new Map(Object.entries(metadata)));
  const wasmTable = pw.Table.fromIPCStream(tableToIPC(table, 'stream'));
  return pw.writeParquet(wasmTable, props.build());
}

/**
 * A Parquet file as an Arrow table (batches of up to 64k rows), read one row group at a time:
 * reading a file of millions of rows in one call held it whole in the WebAssembly heap twice
 * (decoded, then as IPC) and took several times longer (7.5 s against 1.5 s for 5M rows).
 */
export async function readParquet(bytes: Uint8Array): Promise<Table> {
  const pw = await parquetWasm();
  const groups = await rowGroups(bytes);
  if (groups <= 1)
    return tableFromIPC(pw.readParquet(bytes, { batchSize: 1 << 16 }).intoIPCStream());
  const parts: Table[] = [];
  for (let g = 0; g < groups; g++) {
    // A group is a few hundred milliseconds of decoding: requests get a turn between groups.
    if (g > 0) await yieldToEventLoop();
    parts.push(
      tableFromIPC(pw.readParquet(bytes, { batchSize: 1 << 16, rowGroups: [g] }).intoIPCStream()),
    );
  }
  return parts[0].concat(...parts.slice(1));
}

/**
 * The row groups of a Parquet file, from its footer (hyparquet parses the footer alone in
 * under a millisecond; parquet-wasm's metadata reader wants the whole file as a Blob). 0 when
 * the footer does not parse: then the whole read reports what is wrong with the file.
 */
async function rowGroups(bytes: Uint8Array): Promise<number> {
  if (bytes.length < 12) return 0;
  const footer = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(
    bytes.length - 8,
    true,
  );
  if (footer + 8 > bytes.length) return 0;
  try {
    // hyparquet is ESM-only: load it with a dynamic import from this CommonJS build.
    const { parquetMetadata } = await import('hyparquet');
    const tail = bytes.slice(bytes.length - 8 - footer);
    return parquetMetadata(tail.buffer).row_groups.length;
  } catch {
    return 0;
  }
}
