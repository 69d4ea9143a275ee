import { type Clock } from '../shared/clock';
import { InvalidInputError } from '../shared/domain-error';
import {
  type FeatureValue,
  type FeatureViewSchema,
  MAX_ENTITY_KEY_LENGTH,
} from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type FeatureRegistryService, type ResolvedRef } from './feature-registry.service';
import { type OnlineStore } from './feature-store.ports';
import {
  compareEvents,
  type EvaluatedView,
  evaluateView,
  type EventSeries,
  type FeatureEvent,
  seriesOf,
} from './point-in-time';

export interface OnlineValue {
  ref: string;
  value: FeatureValue;
  /** Event time of the newest event behind the value; null when the entity is unknown. */
  asOf: Date | null;
  /** Older than the view's TTL: reported, never silently served as fresh. */
  stale: boolean;
}

export interface ViewFreshness {
  /** view@version */
  view: string;
  asOf: Date | null;
  stale: boolean;
}

/**
 * Column-oriented so a wide read allocates little: `vector[i]` is the value of `refs[i]`,
 * whose view version's freshness is `freshness[freshnessIndex[i]]`.
 */
export interface OnlineRow {
  entityKey: string;
  refs: string[];
  vector: FeatureValue[];
  freshnessIndex: number[];
  /** One entry per view version read, in the order first referenced. */
  freshness: ViewFreshness[];
}

/** The row as one object per ref, for callers that want ref, value, time and staleness together. */
export function onlineValues(row: OnlineRow): OnlineValue[] {
  return row.refs.map((ref, i) => {
    const f = row.freshness[row.freshnessIndex[i]];
    return { ref, value: row.vector[i], asOf: f.asOf, stale: f.stale };
  });
}

export const MAX_ONLINE_ENTITIES = 1_000;

/**
 * Online reads: one packed key per (entity, view version), all fetched in one pipelined
 * round trip, evaluated with the same point-in-time code as offline training sets.
 */
export class OnlineFeatureService {
  constructor(
    private readonly registry: FeatureRegistryService,
    private readonly online: OnlineStore,
    private readonly clock: Clock,
  ) {}

  async read(entityKeys: readonly string[], refs: readonly string[]): Promise<OnlineRow[]> {
    if (entityKeys.length > MAX_ONLINE_ENTITIES) {
      throw new InvalidInputError(
        FeatureErrorCode.TOO_MANY_RECORDS,
        `At most ${MAX_ONLINE_ENTITIES} entities per read`,
        { max: MAX_ONLINE_ENTITIES },
      );
    }
    return this.readResolved(entityKeys, await this.registry.resolveRefs(refs));
  }

  async readResolved(
    entityKeys: readonly string[],
    resolved: readonly ResolvedRef[],
  ): Promise<OnlineRow[]> {
    for (const k of entityKeys)
      if (k.length === 0 || k.length > MAX_ENTITY_KEY_LENGTH)
        throw new InvalidInputError(
          FeatureErrorCode.INVALID_ENTITY_KEY,
          `Entity keys are 1 to ${MAX_ENTITY_KEY_LENGTH} characters (got ${k.length})`,
          { max: MAX_ENTITY_KEY_LENGTH },
        );
    const { versions, freshnessIndex, refs, wholeVersion } = readPlan(resolved);
    const keys = entityKeys.flatMap((entityKey) =>
      versions.map((v) => ({ versionId: v.id, entityKey })),
    );
    const stored = await this.online.readMany(keys);
    const t = this.clock.now().getTime();
    return entityKeys.map((entityKey, ei) => {
      const evaluated = versions.map((v, vi) =>
        evaluateOnline(v.schema, canonicalSeries(stored[ei * versions.length + vi]), t),
      );
      return {
        entityKey,
        refs,
        vector: wholeVersion
          ? evaluated[0].values
          : resolved.map((r, i) => evaluated[freshnessIndex[i]].values[r.position]),
        freshnessIndex,
        freshness: versions.map((v, vi) => ({
          view: `${v.viewName}@${v.version}`,
          asOf: evaluated[vi].asOf === null ? null : new Date(evaluated[vi].asOf as number),
          stale: evaluated[vi].stale,
        })),
      };
    });
  }
}

/**
 * A store may hand back the same (read-only) events array while a key is unchanged; its
 * sorted series is then computed once, not once per read.
 */
const series = new WeakMap<FeatureEvent[], EventSeries>();

function canonicalSeries(events: FeatureEvent[]): EventSeries {
  let s = series.get(events);
  if (!s) series.set(events, (s = seriesOf([...events].sort(compareEvents))));
  return s;
}

/**
 * The last online evaluation of each series, and the times it holds for: from the `t` it was
 * made at until the next time anything it read can change — an event's time, a version
 * becoming known or being superseded, or the TTL passing its newest event. Views with
 * windowed aggregates (whose windows slide with t) are evaluated every time.
 */
const evaluations = new WeakMap<
  EventSeries,
  { schema: FeatureViewSchema; from: number; until: number; view: EvaluatedView }
>();
const sliding = new WeakMap<FeatureViewSchema, boolean>();

/**
 * `evaluateView` as online reads use it (stale values kept and reported), reusing the
 * series' last evaluation while it still holds: a 500-feature view read again and again is
 * not evaluated again until something it depends on changes. The result is frozen: callers
 * share it.
 */
export function evaluateOnline(
  schema: FeatureViewSchema,
  events: EventSeries,
  t: number,
): EvaluatedView {
  let windows = sliding.get(schema);
  if (windows === undefined)
    sliding.set(schema, (windows = schema.features.some((f) => f.aggregation)));
  if (windows) return evaluateView(schema, events, t, { nullWhenStale: false });
  const hit = evaluations.get(events);
  if (hit && hit.schema === schema && t >= hit.from && t < hit.until) return hit.view;
  const view = evaluateView(schema, events, t, { nullWhenStale: false });
  Object.freeze(view.values);
  Object.freeze(view);
  evaluations.set(events, { schema, from: t, until: holdsUntil(schema, events, t, view), view });
  return view;
}

/** The first time after `t` at which an evaluation at `t` may differ (see `evaluateView`). */
function holdsUntil(
  schema: FeatureViewSchema,
  events: EventSeries,
  t: number,
  view: EvaluatedView,
): number {
  let until = Infinity;
  const next = (b: number) => {
    if (b > t && b < until) until = b;
  };
  // A version is superseded when another becomes known: known times cover both.
  for (let i = 0; i < events.length; i++) {
    next(events.eventTs(i));
    next(events.createdTs(i));
  }
  // Stale once t - asOf exceeds the TTL: recomputed from the last moment it is not (at
  // once when that moment is t itself).
  if (view.asOf !== null && !view.stale)
    until = Math.min(until, Math.max(t, view.asOf + schema.ttlSeconds * 1_000));
  return until;
}

interface ReadPlan {
  /** The view versions read, in the order first referenced. */
  versions: ResolvedRef['version'][];
  freshnessIndex: number[];
  refs: string[];
  /** Every feature of one version in definition order (`view@2:*`): the values need no reordering. */
  wholeVersion: boolean;
}

/**
 * The registry hands out one array per resolution (and the same array while it is cached),
 * so the plan derived from it is computed once per resolution, not once per read.
 */
const plans = new WeakMap<readonly ResolvedRef[], ReadPlan>();

function readPlan(resolved: readonly ResolvedRef[]): ReadPlan {
  let plan = plans.get(resolved);
  if (!plan) {
    const versions = [...new Map(resolved.map((r) => [r.version.id, r.version])).values()];
    const versionIndex = new Map(versions.map((v, i) => [v.id, i]));
    plan = {
      versions,
      freshnessIndex: resolved.map((r) => versionIndex.get(r.version.id) as number),
      refs: resolved.map((r) => r.ref),
      wholeVersion:
        versions.length === 1 &&
        resolved.length === versions[0].schema.features.length &&
        resolved.every((r, i) => r.position === i),
    };
    plans.set(resolved, plan);
  }
  return plan;
}
