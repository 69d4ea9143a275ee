import { type Clock } from '../shared/clock';
import { InvalidInputError } from '../shared/domain-error';
import { type FeatureValue, MAX_ENTITY_KEY_LENGTH } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type FeatureRegistryService, type ResolvedRef } from './feature-registry.service';
import { type OnlineStore } from './feature-store.ports';
import {
  compareEvents,
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
        evaluateView(v.schema, canonicalSeries(stored[ei * versions.length + vi]), t, {
          nullWhenStale: false,
        }),
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
