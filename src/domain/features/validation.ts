import {
  eventLayout,
  type FeatureSpec,
  FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import { type FeatureEvent } from './point-in-time';

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
}

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
}

/**
 * Checks a batch against a view version's schema. Every record ends up in exactly one of
 * `accepted` or `quarantined` (accepted + quarantined = received). Per-record rules: entity
 * key, event id and time, type, range, allowed values, lateness against the entity's newest
 * event time (`watermarks`, updated as the batch is read in order). Per-batch rule: a
 * feature whose share of nulls exceeds `maxNullFraction` quarantines the records that are
 * null in it.
 */
export function validateBatch(
  schema: FeatureViewSchema,
  records: readonly IngestRecord[],
  watermarks: Map<string, number>,
  options: ValidationOptions = { lateness: true, requireKnownAt: false },
): ValidationOutcome {
  const violations: Violation[][] = records.map(() => []);
  const nulls = new Map<string, number[]>();
  const marks = new Map(watermarks);

  records.forEach((r, i) => {
    const v = violations[i];
    if (r.malformed)
      v.push({ rule: ValidationRule.MALFORMED_RECORD, feature: null, message: r.malformed });
    if (typeof r.entityKey !== 'string' || r.entityKey.length === 0 || r.entityKey.length > 256) {
      v.push({
        rule: ValidationRule.MISSING_ENTITY_KEY,
        feature: null,
        message: 'entityKey must be a non-empty string of at most 256 characters',
      });
    }
    if (typeof r.eventId !== 'string' || r.eventId.length === 0 || r.eventId.length > 256) {
      v.push({
        rule: ValidationRule.MISSING_EVENT_ID,
        feature: null,
        message: 'eventId must be a non-empty string of at most 256 characters',
      });
    }
    if (r.knownAt === undefined && options.requireKnownAt) {
      v.push({
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: 'a backfill record needs knownAt: when its value became known',
      });
    } else if (
      r.knownAt !== undefined &&
      (typeof r.knownAt !== 'number' || !Number.isFinite(r.knownAt) || r.knownAt < r.eventTs)
    ) {
      v.push({
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: 'knownAt must be a valid time, not before the event time',
      });
    }
    if (typeof r.eventTs !== 'number' || !Number.isFinite(r.eventTs)) {
      v.push({
        rule: ValidationRule.INVALID_EVENT_TIME,
        feature: null,
        message: 'eventTs must be a valid time',
      });
    } else if (options.lateness && typeof r.entityKey === 'string') {
      const mark = marks.get(r.entityKey);
      if (mark !== undefined && r.eventTs < mark - schema.allowedLatenessSeconds * 1000) {
        v.push({
          rule: ValidationRule.LATE_EVENT,
          feature: null,
          message: `event time ${new Date(r.eventTs).toISOString()} is more than ${schema.allowedLatenessSeconds}s behind the entity's newest event ${new Date(mark).toISOString()}`,
        });
      }
    }
    for (const f of schema.features) {
      const raw = (r.fields ?? {})[f.source];
      if (raw === null || raw === undefined) {
        const list = nulls.get(f.name) ?? [];
        list.push(i);
        nulls.set(f.name, list);
        continue;
      }
      const problem = checkValue(f, raw);
      if (problem) v.push(problem);
    }
    if (v.length === 0 && typeof r.eventTs === 'number') {
      marks.set(r.entityKey, Math.max(marks.get(r.entityKey) ?? -Infinity, r.eventTs));
    }
  });

  for (const f of schema.features) {
    const maxFrac = f.validation.maxNullFraction;
    const idx = nulls.get(f.name) ?? [];
    if (maxFrac == null || records.length === 0 || idx.length / records.length <= maxFrac) continue;
    const frac = idx.length / records.length;
    for (const i of idx) {
      violations[i].push({
        rule: ValidationRule.NULL_FRACTION_EXCEEDED,
        feature: f.name,
        message: `${(frac * 100).toFixed(1)}% of the batch is null in ${f.source}; at most ${(maxFrac * 100).toFixed(1)}% allowed`,
      });
    }
  }

  const out: ValidationOutcome = { accepted: [], quarantined: [] };
  const { sources } = eventLayout(schema);
  records.forEach((r, i) => {
    if (violations[i].length) {
      out.quarantined.push({ record: r, violations: violations[i] });
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
