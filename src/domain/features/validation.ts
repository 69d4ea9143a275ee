import {
  eventLayout,
  type FeatureSpec,
  FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import { type FeatureEvent } from './point-in-time';
import { MAX_ENTITY_KEY_LENGTH } from './feature-definition';
import { describeTextProblem, type TextProblem, textProblem } from '../shared/input-text';

/** A record as it arrives, before validation. */
export interface IngestRecord {
  entityKey: string;
  eventId: string;
  /** Event time, epoch ms. */
  eventTs: number;
  fields: Record<string, unknown>;
  /**
   * When the value became known (epoch ms), for backfills of history. Defaults to the
   * ingestion time and is never later than it: nothing can be known in the future.
   */
  knownAt?: number;
  /** Set by a source that could not parse the record; the reason is kept for the quarantine. */
  malformed?: string;
}

export enum ValidationRule {
  MALFORMED_RECORD = 'MALFORMED_RECORD',
  MISSING_ENTITY_KEY = 'MISSING_ENTITY_KEY',
  MISSING_EVENT_ID = 'MISSING_EVENT_ID',
  INVALID_EVENT_TIME = 'INVALID_EVENT_TIME',
  WRONG_TYPE = 'WRONG_TYPE',
  OUT_OF_RANGE = 'OUT_OF_RANGE',
  NOT_ALLOWED_VALUE = 'NOT_ALLOWED_VALUE',
  NULL_FRACTION_EXCEEDED = 'NULL_FRACTION_EXCEEDED',
  LATE_EVENT = 'LATE_EVENT',
  /** The known time of a stored version of the event, with another payload. */
  CONFLICTING_DUPLICATE = 'CONFLICTING_DUPLICATE',
  /** Text that is not text: a NUL or a lone UTF-16 surrogate (the edge rule of ADR 0017). */
  INVALID_TEXT = 'INVALID_TEXT',
}

/** Event times before this are taken for a mistake (a year 1, a seconds/ms mix-up). */
export const EARLIEST_EVENT_TIME = Date.UTC(1900, 0, 1);
/** How far ahead of the platform's clock an event may claim to be (clock skew). */
export const MAX_FUTURE_SKEW_MS = 24 * 3_600_000;

export interface Violation {
  rule: ValidationRule;
  feature: string | null;
  message: string;
}

export interface QuarantinedRecord {
  record: IngestRecord;
  violations: Violation[];
}

export interface ValidationOutcome {
  accepted: {
    entityKey: string;
    event: Omit<FeatureEvent, 'createdTs'>;
    knownAt?: number;
    record: IngestRecord;
  }[];
  quarantined: QuarantinedRecord[];
}

export interface ValidationOptions {
  /** Quarantine records too far behind their entity's newest event (LATE_EVENT). */
  lateness: boolean;
  /** Quarantine records without knownAt (backfills of history must say when it was known). */
  requireKnownAt: boolean;
  /**
   * The platform's time: event times more than MAX_FUTURE_SKEW_MS after it are quarantined
   * (a year-9999 event would make every later one "late" for its entity).
   */
  now?: number;
}

/**
 * A batch seen column by column: the same checks serve records (ingestion) and the columns
 * of a backfill file, which then builds no object per row. `field(i, p)` is the raw value of
 * source field `eventLayout(schema).sources[p]`.
 */
export interface BatchColumns {
  readonly length: number;
  entityKey(i: number): unknown;
  eventId(i: number): unknown;
  eventTs(i: number): unknown;
  /** undefined when the record has none. */
  knownAt(i: number): unknown;
  field(i: number, position: number): unknown;
  malformed?(i: number): string | undefined;
}

/**
 * Checks a batch against a view version's schema. Per-record rules: entity key, event id and
 * time, type, range, allowed values, lateness against the entity's newest event time
 * (`watermarks`, updated as the batch is read in order). Per-batch rule: a feature whose
 * share of nulls exceeds `maxNullFraction` quarantines the records that are null in it.
 * Returns the violations of each failing row (a row not in the map passed).
 */
export function validateColumns(
  schema: FeatureViewSchema,
  batch: BatchColumns,
  watermarks: Map<string, number>,
  options: ValidationOptions = { lateness: true, requireKnownAt: false },
): Map<number, Violation[]> {
  const failed = new Map<number, Violation[]>();
  const add = (i: number, v: Violation) => {
    const list = failed.get(i);
    if (list) list.push(v);
    else failed.set(i, [v]);
  };
  const { positions } = eventLayout(schema);
  const nulls = schema.features.map(() => [] as number[]);
  const marks = new Map(watermarks);

  for (let i = 0; i < batch.length; i++) {
    const malformed = batch.malformed?.(i);
    if (malformed)
      add(i, { rule: ValidationRule.MALFORMED_RECORD, feature: null, message: malformed });
    const entityKey = batch.entityKey(i);
    if (
      typeof entityKey !== 'string' ||
      entityKey.length === 0 ||
      entityKey.length > MAX_ENTITY_KEY_LENGTH
    ) {
      add(i, {
        rule: ValidationRule.MISSING_ENTITY_KEY,
        feature: null,
        message: `entityKey must be a non-empty string of at most ${MAX_ENTITY_KEY_LENGTH} characters`,
      });
    } else if (textProblem(entityKey)) {
      add(i, {
        rule: ValidationRule.INVALID_TEXT,
        feature: null,
        message: `entityKey ${describeTextProblem(textProblem(entityKey) as TextProblem)}`,
      });
    }
    const eventId = batch.eventId(i);
    if (
      typeof eventId !== 'string' ||
      eventId.length === 0 ||
      eventId.length > MAX_ENTITY_KEY_LENGTH
    ) {
      add(i, {
        rule: ValidationRule.MISSING_EVENT_ID,
        feature: null,
        message: `eventId must be a non-empty string of at most ${MAX_ENTITY_KEY_LENGTH} characters`,
      });
    } else if (textProblem(eventId)) {
      add(i, {
        rule: ValidationRule.INVALID_TEXT,
        feature: null,
        message: `eventId ${describeTextProblem(textProblem(eventId) as TextProblem)}`,
      });
    }
    const eventTs = batch.eventTs(i);
    const knownAt = batch.knownAt(i);
    if (knownAt === undefined && options.requireKnownAt) {
      add(i, {
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: 'a backfill record needs knownAt: when its value became known',
      });
    } else if (
      knownAt !== undefined &&
      (typeof knownAt !== 'number' || !Number.isFinite(knownAt) || knownAt < (eventTs as number))
    ) {
      add(i, {
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: 'knownAt must be a valid time, not before the event time',
      });
    }
    if (typeof eventTs !== 'number' || !Number.isFinite(eventTs)) {
      add(i, {
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: 'eventTs must be a valid time',
      });
    } else if (
      eventTs < EARLIEST_EVENT_TIME ||
      (options.now !== undefined && eventTs > options.now + MAX_FUTURE_SKEW_MS)
    ) {
      add(i, {
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: `event time ${new Date(eventTs).toISOString()} is before 1900 or more than a day ahead of the platform's clock`,
      });
    } else if (options.lateness && typeof entityKey === 'string') {
      const mark = marks.get(entityKey);
      if (mark !== undefined && eventTs < mark - schema.allowedLatenessSeconds * 1000) {
        add(i, {
          rule: ValidationRule.LATE_EVENT,
          feature: null,
          message: `event time ${new Date(eventTs).toISOString()} is more than ${schema.allowedLatenessSeconds}s behind the entity's newest event ${new Date(mark).toISOString()}`,
        });
      }
    }
    for (let f = 0; f < schema.features.length; f++) {
      const raw = batch.field(i, positions[f]);
      if (raw === null || raw === undefined) {
        nulls[f].push(i);
        continue;
      }
      const problem = checkValue(schema.features[f], raw);
      if (problem) add(i, problem);
    }
    if (
      !failed.has(i) &&
      typeof eventTs === 'number' &&
      typeof entityKey === 'string' &&
      options.lateness
    )
      marks.set(entityKey, Math.max(marks.get(entityKey) ?? -Infinity, eventTs));
  }

  schema.features.forEach((f, k) => {
    const maxFrac = f.validation.maxNullFraction;
    const idx = nulls[k];
    if (maxFrac == null || batch.length === 0 || idx.length / batch.length <= maxFrac) return;
    const frac = idx.length / batch.length;
    for (const i of idx) {
      add(i, {
        rule: ValidationRule.NULL_FRACTION_EXCEEDED,
        feature: f.name,
        message: `${(frac * 100).toFixed(1)}% of the batch is null in ${f.source}; at most ${(maxFrac * 100).toFixed(1)}% allowed`,
      });
    }
  });
  return failed;
}

/**
 * Checks a batch of records (validateColumns' rules). Every record ends up in exactly one of
 * `accepted` or `quarantined` (accepted + quarantined = received).
 */
export function validateBatch(
  schema: FeatureViewSchema,
  records: readonly IngestRecord[],
  watermarks: Map<string, number>,
  options: ValidationOptions = { lateness: true, requireKnownAt: false },
): ValidationOutcome {
  const { sources } = eventLayout(schema);
  const failed = validateColumns(
    schema,
    {
      length: records.length,
      entityKey: (i) => records[i].entityKey,
      eventId: (i) => records[i].eventId,
      eventTs: (i) => records[i].eventTs,
      knownAt: (i) => records[i].knownAt,
      field: (i, p) => (records[i].fields ?? {})[sources[p]],
      malformed: (i) => records[i].malformed,
    },
    watermarks,
    options,
  );
  const out: ValidationOutcome = { accepted: [], quarantined: [] };
  records.forEach((r, i) => {
    const violations = failed.get(i);
    if (violations) {
      out.quarantined.push({ record: r, violations });
      return;
    }
    const fields = r.fields ?? {};
    const values = sources.map((s) => (fields[s] as FeatureValue | undefined) ?? null);
    out.accepted.push({
      entityKey: r.entityKey,
      event: { eventId: r.eventId, eventTs: r.eventTs, values },
      knownAt: r.knownAt,
      record: r,
    });
  });
  return out;
}

function checkValue(f: FeatureSpec, raw: unknown): Violation | null {
  const wrong = (expected: string): Violation => ({
    rule: ValidationRule.WRONG_TYPE,
    feature: f.name,
    message: `${f.source} must be ${expected}, got ${JSON.stringify(raw)?.slice(0, 60)}`,
  });
  switch (f.type) {
    case FeatureType.INT:
      if (typeof raw !== 'number' || !Number.isInteger(raw)) return wrong('an integer');
      break;
    case FeatureType.FLOAT:
      if (typeof raw !== 'number' || !Number.isFinite(raw)) return wrong('a finite number');
      break;
    case FeatureType.BOOL:
      if (typeof raw !== 'boolean') return wrong('a boolean');
      break;
    case FeatureType.STRING:
      if (typeof raw !== 'string') return wrong('a string');
      if (textProblem(raw))
        return {
          rule: ValidationRule.INVALID_TEXT,
          feature: f.name,
          message: `${f.source} ${describeTextProblem(textProblem(raw) as TextProblem)}`,
        };
      break;
    case FeatureType.FLOAT_LIST:
      if (!Array.isArray(raw) || !raw.every((x) => typeof x === 'number' && Number.isFinite(x)))
        return wrong('a list of finite numbers');
      break;
  }
  const { min, max, allowedValues } = f.validation;
  if (typeof raw === 'number' && ((min != null && raw < min) || (max != null && raw > max))) {
    return {
      rule: ValidationRule.OUT_OF_RANGE,
      feature: f.name,
      message: `${f.source}=${raw} is outside [${min ?? '-inf'}, ${max ?? 'inf'}]`,
    };
  }
  if (allowedValues && allowedValues.length && !allowedValues.includes(String(raw))) {
    return {
      rule: ValidationRule.NOT_ALLOWED_VALUE,
      feature: f.name,
      message: `${f.source}=${JSON.stringify(raw)} is not one of the allowed values`,
    };
  }
  return null;
}
