import { FeatureType } from './feature-definition';

/**
 * Open tables (docs/adr/0033): the compacted offline history of a view version as Parquet
 * files that pandas, DuckDB, Spark or Trino read without Aether. Each segment is written a
 * second time, as one Parquet file, and swapped and deleted with it:
 *
 *   offline/<versionId>/parquet/bucket=<NN>/<throughSeq>-<unique>.parquet
 *
 * (NN: the bucket, two digits; the Hive-style `bucket=` directory is what engines read as a
 * partition column). A bucket holds a base and a few deltas (docs/adr/0035): the bucket's
 * history is the union of its files. A file's rows are its segment's, sorted by (entity_key,
 * event_ts, known_ts, event_id); its `superseded_ts` says when a newer version in the same
 * file became known.
 */
export const OPEN_TABLE_FORMAT = 'PARQUET';

export const OPEN_TABLE_LAYOUT =
  "offline/<versionId>/parquet/bucket=<NN>/<throughSeq>-<unique>.parquet (Hive-style bucket=NN: FNV-1a of entity_key mod 16; a base file and a few deltas per bucket, whose union is the bucket's history: every version of every event; each file sorted by entity_key, event_ts, known_ts, event_id; superseded_ts within its own file)";

/** The columns every open table starts with, before one column per source field. */
export const OPEN_TABLE_KEY_COLUMNS = [
  { name: 'entity_key', type: 'string' },
  { name: 'event_id', type: 'string' },
  { name: 'event_ts', type: 'timestamp[ms, UTC]' },
  { name: 'known_ts', type: 'timestamp[ms, UTC]' },
  { name: 'superseded_ts', type: 'timestamp[ms, UTC]' },
] as const;

export interface OpenTableColumn {
  name: string;
  /** Its Arrow type as pyarrow prints it: string, double, bool, list<double>, timestamp[ms, UTC]. */
  type: string;
}

/**
 * A source field's column type, as `datasetSql` types it (point-in-time-sql.ts): INT as
 * double too, since ingestion takes any integral double as INT.
 */
export function openColumnType(t: FeatureType): string {
  switch (t) {
    case FeatureType.INT:
    case FeatureType.FLOAT:
      return 'double';
    case FeatureType.BOOL:
      return 'bool';
    case FeatureType.STRING:
      return 'string';
    case FeatureType.FLOAT_LIST:
      return 'list<double>';
  }
}

/**
 * The column of each source field, in the layout's source order: named as the field, or
 * `source_<field>` where the field's name would collide (without case, as engines compare
 * names) with a key column or an earlier one.
 */
export function openTableSourceColumns(
  features: readonly { source: string; type: FeatureType }[],
): OpenTableColumn[] {
  // The layout's sources (eventLayout): in order of first use, typed by their first feature.
  const sources = [...new Set(features.map((f) => f.source))];
  const types = sources.map(
    (s) => features.find((f) => f.source === s)?.type ?? FeatureType.STRING,
  );
  const taken = new Set<string>(OPEN_TABLE_KEY_COLUMNS.map((c) => c.name));
  return sources.map((s, p) => {
    let name = s;
    while (taken.has(name.toLowerCase())) name = `source_${name}`;
    taken.add(name.toLowerCase());
    return { name, type: openColumnType(types[p]) };
  });
}

export function openTableColumns(
  features: readonly { source: string; type: FeatureType }[],
): OpenTableColumn[] {
  return [
    ...OPEN_TABLE_KEY_COLUMNS.map((c) => ({ name: c.name, type: c.type as string })),
    ...openTableSourceColumns(features),
  ];
}

/** The artifact key of a bucket's Parquet file. */
export function openTableKey(
  versionId: string,
  bucket: number,
  throughSeq: number,
  unique: string,
): string {
  return `offline/${versionId}/parquet/bucket=${String(bucket).padStart(2, '0')}/${throughSeq}-${unique}.parquet`;
}

export interface OpenTableFile {
  bucket: number;
  /** 0: the bucket's base; 1…: its deltas, oldest first (docs/adr/0035). */
  run: number;
  key: string;
  /** What a reader opens: `file:///…` for the filesystem artifact store, `s3://bucket/key` for S3. */
  uri: string;
  rows: number;
  sha256: string;
  size: number;
}

/** A version's open table as stored now. */
export interface OpenTableFiles {
  /** The artifact store's location (`file:///…`, `s3://bucket/prefix`) the keys are under. */
  location: string;
  /** Every segment has its Parquet file (segments written before open tables have none). */
  complete: boolean;
  files: OpenTableFile[];
}
