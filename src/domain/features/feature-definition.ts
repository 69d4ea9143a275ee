import { createHash } from 'node:crypto';

/** The value type of a feature's source field, as checked at ingestion. */
export enum FeatureType {
  INT = 'INT',
  FLOAT = 'FLOAT',
  BOOL = 'BOOL',
  STRING = 'STRING',
  FLOAT_LIST = 'FLOAT_LIST',
}

export type FeatureValue = number | boolean | string | number[] | null;

/**
 * Interval closure is explicit. LEFT: buckets [e0,e1), [e1,e2), …; RIGHT: (e0,e1], (e1,e2], ….
 * A value outside the edges has no bucket (null); range validation should catch it first.
 */
export enum BinClosure {
  LEFT = 'LEFT',
  RIGHT = 'RIGHT',
}

export type Transform =
  | { kind: 'IDENTITY' }
  | { kind: 'BIN'; edges: number[]; closed: BinClosure }
  /** Index of the value in `categories`; unknown values map to `categories.length`. */
  | { kind: 'CATEGORY_INDEX'; categories: string[] };

export enum AggregationFn {
  COUNT = 'COUNT',
  SUM = 'SUM',
  MEAN = 'MEAN',
  MIN = 'MIN',
  MAX = 'MAX',
  LAST = 'LAST',
}

/** Over event time: events with eventTs in (t - windowSeconds, t]. */
export interface Aggregation {
  fn: AggregationFn;
  windowSeconds: number;
}

export interface ValidationRules {
  min?: number | null;
  max?: number | null;
  allowedValues?: string[] | null;
  /** Largest share of nulls accepted for this feature in one ingested batch (0..1). */
  maxNullFraction?: number | null;
}

export interface FeatureSpec {
  name: string;
  /** Type of the source field in each record. */
  type: FeatureType;
  /** Field of the record this feature reads. */
  source: string;
  transform: Transform;
  aggregation: Aggregation | null;
  validation: ValidationRules;
}

/** What defines a view version's meaning: any change here creates a new version. */
export interface FeatureViewSchema {
  entity: string;
  /** Name of the stream/batch source records arrive from. */
  source: string;
  ttlSeconds: number;
  /** How far behind an entity's newest event time a record may arrive and still be accepted. */
  allowedLatenessSeconds: number;
  features: FeatureSpec[];
}

/** Edits that change no value: they never bump the version. */
export interface FeatureViewMetadata {
  description: string;
  owner: string;
  tags: string[];
}

export interface FeatureViewVersion {
  id: string;
  viewId: string;
  viewName: string;
  version: number;
  schema: FeatureViewSchema;
  fingerprint: string;
  createdAt: Date;
  retiredAt: Date | null;
}

/** The output type a feature has after its transform and aggregation. */
export function outputType(f: FeatureSpec): FeatureType {
  if (f.aggregation) {
    if (f.aggregation.fn === AggregationFn.COUNT) return FeatureType.INT;
    if (f.aggregation.fn === AggregationFn.LAST)
      return f.transform.kind === 'IDENTITY' ? f.type : FeatureType.INT;
    return FeatureType.FLOAT;
  }
  return f.transform.kind === 'IDENTITY' ? f.type : FeatureType.INT;
}

/** Stable hash of everything that gives features their meaning (key order independent). */
export function schemaFingerprint(schema: FeatureViewSchema): string {
  return createHash('sha256').update(canonicalJson(schema)).digest('hex');
}

export function canonicalJson(v: unknown): string {
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export interface EventLayout {
  /** The distinct source fields the version reads, in order of first use. */
  sources: readonly string[];
  /** Per feature, in schema order: the position of its source in `sources`. */
  positions: readonly number[];
  /** Per source: its type, that of the first feature reading it. */
  types: readonly FeatureType[];
  /**
   * Per source: whether columns hold it as numbers (FLOAT, INT and BOOL, a boolean as 1 or 0,
   * null as NaN, which validation never admits as a value) rather than as values.
   */
  numeric: readonly boolean[];
}

const layouts = new WeakMap<FeatureViewSchema, EventLayout>();

/**
 * How a version's events hold their values: `FeatureEvent.values[i]` is source field
 * `sources[i]`. Positional, so reading a wide view builds no object keyed by 500 names.
 * Schemas are immutable, so the layout is computed once per schema object.
 */
export function eventLayout(schema: FeatureViewSchema): EventLayout {
  let l = layouts.get(schema);
  if (!l) {
    const sources = [...new Set(schema.features.map((f) => f.source))];
    const at = new Map(sources.map((s, i) => [s, i]));
    const types = sources.map(
      (s) => schema.features.find((f) => f.source === s)?.type ?? FeatureType.STRING,
    );
    l = {
      sources,
      positions: schema.features.map((f) => at.get(f.source) as number),
      types,
      numeric: types.map(
        (t) => t === FeatureType.FLOAT || t === FeatureType.INT || t === FeatureType.BOOL,
      ),
    };
    layouts.set(schema, l);
  }
  return l;
}

/** A value as a numeric column holds it (`EventLayout.numeric`): null as NaN, true as 1. */
export function numberOf(v: FeatureValue | undefined): number {
  return v === null || v === undefined ? NaN : Number(v);
}

/** A numeric column's number back as the value of a source of this type. */
export function valueOfNumber(v: number, type: FeatureType): FeatureValue {
  if (v !== v) return null; // NaN: null
  return type === FeatureType.BOOL ? v === 1 : v;
}

/** The largest window of any aggregate: how much event history the online state keeps. */
export function maxWindowSeconds(schema: FeatureViewSchema): number {
  return Math.max(0, ...schema.features.map((f) => f.aggregation?.windowSeconds ?? 0));
}

/**
 * `airport_delays@2:mean_delay_6h` → view, version (null: latest), feature. The feature
 * `*` (`airport_delays@2:*`) stands for every feature of the version, in definition order.
 */
export interface FeatureRef {
  view: string;
  version: number | null;
  feature: string;
}

export const ALL_FEATURES = '*';

const REF_RE = /^([a-z][a-z0-9_]{0,62})(?:@(\d+))?:([a-z][a-z0-9_]{0,62}|\*)$/;

export function parseFeatureRef(ref: string): FeatureRef | null {
  const m = REF_RE.exec(ref.trim());
  if (!m) return null;
  return { view: m[1], version: m[2] ? Number(m[2]) : null, feature: m[3] };
}

export function formatFeatureRef(r: { view: string; version: number; feature: string }): string {
  return `${r.view}@${r.version}:${r.feature}`;
}

/** Entity keys (and event ids) are 1 to this many characters: at ingestion and online reads. */
export const MAX_ENTITY_KEY_LENGTH = 256;
