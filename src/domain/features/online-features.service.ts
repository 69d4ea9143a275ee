import { type Clock } from '../shared/clock';
import { InvalidInputError } from '../shared/domain-error';
import { type FeatureValue } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type FeatureRegistryService, type ResolvedRef } from './feature-registry.service';
import { type OnlineStore } from './feature-store.ports';
import { evaluateView } from './point-in-time';

export interface OnlineValue {
  ref: string;
  value: FeatureValue;
  /** Event time of the newest event behind the value; null when the entity is unknown. */
  asOf: Date | null;
  /** Older than the view's TTL: reported, never silently served as fresh. */
  stale: boolean;
}

export interface OnlineRow {
  entityKey: string;
  values: OnlineValue[];
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
    const resolved = await this.registry.resolveRefs(refs);
    return this.readResolved(entityKeys, resolved);
  }

  async readResolved(
    entityKeys: readonly string[],
    resolved: readonly ResolvedRef[],
  ): Promise<OnlineRow[]> {
    const versions = [...new Map(resolved.map((r) => [r.version.id, r.version])).values()];
    const keys = entityKeys.flatMap((entityKey) =>
      versions.map((v) => ({ versionId: v.id, entityKey })),
    );
    const states = await this.online.readMany(keys);
    const t = this.clock.now().getTime();
    return entityKeys.map((entityKey, ei) => {
      const evaluated = new Map(
        versions.map((v, vi) => [
          v.id,
          evaluateView(v.schema, states[ei * versions.length + vi]?.events ?? [], t, {
            nullWhenStale: false,
          }),
        ]),
      );
      return {
        entityKey,
        values: resolved.map((r) => {
          const ev = evaluated.get(r.version.id) as ReturnType<typeof evaluateView>;
          return {
            ref: r.ref,
            value: ev.values[r.feature],
            asOf: ev.asOf === null ? null : new Date(ev.asOf),
            stale: ev.stale,
          };
        }),
      };
    });
  }
}
