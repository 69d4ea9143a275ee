import { type Table, tableFromIPC, tableToIPC } from 'apache-arrow';

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

/** A Parquet file as an Arrow table (batches of up to 64k rows). */
export async function readParquet(bytes: Uint8Array): Promise<Table> {
  const pw = await parquetWasm();
  return tableFromIPC(pw.readParquet(bytes, { batchSize: 1 << 16 }).intoIPCStream());
}
